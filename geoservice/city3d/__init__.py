"""3D city model domain: PLATEAU CityGML buildings, synthetic city files, 3D Tiles.

* (with the other loaders) :mod:`geoservice.loaders.citygml`, the streaming reader of
  PLATEAU ``bldg`` CityGML files, and :mod:`geoservice.loaders.plateau_bldg`, the
  ``plateau-bldg`` loader (``layers/buildings.yml``);
* :mod:`geoservice.city3d.api` - the room: the ``/3d/`` page, tileset links, the
  after-build step that writes the 3D Tiles;
* :mod:`geoservice.city3d.synthetic` - PLATEAU-format LOD1 files of N invented buildings;
* :mod:`geoservice.city3d.tiles3d` - buildings -> 3D Tiles 1.1 (glb + metadata);
* :mod:`geoservice.city3d.lod` - the tileset's level-of-detail quadtree (merged blocks
  above, buildings at the leaves);
* :mod:`geoservice.city3d.resume` - staging, checkpoints and atomic publication of a
  build (rerun an interrupted build to resume it);
* :mod:`geoservice.city3d.validate` - checks of a written tileset (and gltf-validator);
* :mod:`geoservice.city3d.cli` - ``geoservice city3d synth|tiles|validate``.
"""
