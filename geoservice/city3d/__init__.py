"""3D city model domain: PLATEAU CityGML buildings, synthetic city files, 3D Tiles.

* :mod:`geoservice.city3d.citygml` - streaming reader of PLATEAU ``bldg`` CityGML files;
* :mod:`geoservice.city3d.loader` - the ``plateau-bldg`` loader (``layers/buildings.yml``);
* :mod:`geoservice.city3d.synthetic` - PLATEAU-format LOD1 files of N invented buildings;
* :mod:`geoservice.city3d.tiles3d` - buildings -> 3D Tiles 1.1 (glb + metadata);
* :mod:`geoservice.city3d.validate` - checks of a written tileset (and gltf-validator);
* :mod:`geoservice.city3d.cli` - ``geoservice city3d synth|tiles|validate``.
"""
