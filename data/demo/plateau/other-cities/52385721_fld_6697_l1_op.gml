<?xml version="1.0" encoding="UTF-8"?>
<!-- SYNTHETIC demo data for Tokyo GeoTwin - invented polygons and depth ranks in the PLATEAU
     fld format; not an official flood inundation map. -->
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" xmlns:gml="http://www.opengis.net/gml" xmlns:wtr="http://www.opengis.net/citygml/waterbody/2.0" xmlns:uro="https://www.geospatial.jp/iur/uro/2.0">
	<gml:boundedBy>
		<gml:Envelope srsName="http://www.opengis.net/def/crs/EPSG/0/6697" srsDimension="3">
			<gml:lowerCorner>35.1010 138.8880 0</gml:lowerCorner>
			<gml:upperCorner>35.1070 138.8990 0</gml:upperCorner>
		</gml:Envelope>
	</gml:boundedBy>
	<core:cityObjectMember>
		<wtr:WaterBody gml:id="fld_demo_0001">
			<gml:name codeSpace="../../../../codelists/WaterBody_name.xml">1</gml:name>
			<wtr:class codeSpace="../../../../codelists/WaterBody_class.xml">1140</wtr:class>
			<wtr:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>35.101000 138.888000 0 35.101000 138.889500 0 35.102500 138.889500 0 35.101000 138.888000 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>
					<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>35.101000 138.888000 0 35.102500 138.889500 0 35.102500 138.888000 0 35.101000 138.888000 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>
				</gml:MultiSurface>
			</wtr:lod1MultiSurface>
			<uro:floodingRiskAttribute>
				<uro:WaterBodyRiverFloodingRiskAttribute>
					<uro:description codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_description.xml">1</uro:description>
					<uro:rank codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_rank.xml">1</uro:rank>
					<uro:rankOrg codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_rankOrg.xml">1</uro:rankOrg>
					<uro:adminType codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_adminType.xml">2</uro:adminType>
					<uro:scale codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_scale.xml">L1</uro:scale>
				</uro:WaterBodyRiverFloodingRiskAttribute>
			</uro:floodingRiskAttribute>
		</wtr:WaterBody>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<wtr:WaterBody gml:id="fld_demo_0002">
			<gml:name codeSpace="../../../../codelists/WaterBody_name.xml">1</gml:name>
			<wtr:class codeSpace="../../../../codelists/WaterBody_class.xml">1140</wtr:class>
			<wtr:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>35.103000 138.891000 0 35.103000 138.892500 0 35.104500 138.892500 0 35.103000 138.891000 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>
					<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>35.103000 138.891000 0 35.104500 138.892500 0 35.104500 138.891000 0 35.103000 138.891000 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>
				</gml:MultiSurface>
			</wtr:lod1MultiSurface>
			<uro:floodingRiskAttribute>
				<uro:WaterBodyRiverFloodingRiskAttribute>
					<uro:description codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_description.xml">1</uro:description>
					<uro:rank codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_rank.xml">2</uro:rank>
					<uro:rankOrg codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_rankOrg.xml">2</uro:rankOrg>
					<uro:adminType codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_adminType.xml">2</uro:adminType>
					<uro:scale codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_scale.xml">L1</uro:scale>
				</uro:WaterBodyRiverFloodingRiskAttribute>
			</uro:floodingRiskAttribute>
		</wtr:WaterBody>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<wtr:WaterBody gml:id="fld_demo_0003">
			<gml:name codeSpace="../../../../codelists/WaterBody_name.xml">1</gml:name>
			<wtr:class codeSpace="../../../../codelists/WaterBody_class.xml">1140</wtr:class>
			<wtr:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>35.101000 138.895000 0 35.101000 138.896500 0 35.102500 138.896500 0 35.101000 138.895000 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>
					<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>35.101000 138.895000 0 35.102500 138.896500 0 35.102500 138.895000 0 35.101000 138.895000 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>
				</gml:MultiSurface>
			</wtr:lod1MultiSurface>
			<uro:floodingRiskAttribute>
				<uro:WaterBodyRiverFloodingRiskAttribute>
					<uro:description codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_description.xml">1</uro:description>
					<uro:rank codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_rank.xml">3</uro:rank>
					<uro:rankOrg codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_rankOrg.xml">4</uro:rankOrg>
					<uro:adminType codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_adminType.xml">2</uro:adminType>
					<uro:scale codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_scale.xml">L1</uro:scale>
				</uro:WaterBodyRiverFloodingRiskAttribute>
			</uro:floodingRiskAttribute>
		</wtr:WaterBody>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<wtr:WaterBody gml:id="fld_demo_0004">
			<gml:name codeSpace="../../../../codelists/WaterBody_name.xml">1</gml:name>
			<wtr:class codeSpace="../../../../codelists/WaterBody_class.xml">1140</wtr:class>
			<wtr:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>35.104000 138.896000 0 35.104000 138.897500 0 35.105500 138.897500 0 35.104000 138.896000 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>
					<gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>35.104000 138.896000 0 35.105500 138.897500 0 35.105500 138.896000 0 35.104000 138.896000 0</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>
				</gml:MultiSurface>
			</wtr:lod1MultiSurface>
			<uro:floodingRiskAttribute>
				<uro:WaterBodyRiverFloodingRiskAttribute>
					<uro:description codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_description.xml">1</uro:description>
					<uro:rank codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_rank.xml">4</uro:rank>
					<uro:rankOrg codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_rankOrg.xml">6</uro:rankOrg>
					<uro:adminType codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_adminType.xml">2</uro:adminType>
					<uro:scale codeSpace="../../../../codelists/WaterBodyRiverFloodingRiskAttribute_scale.xml">L1</uro:scale>
				</uro:WaterBodyRiverFloodingRiskAttribute>
			</uro:floodingRiskAttribute>
		</wtr:WaterBody>
	</core:cityObjectMember>
</core:CityModel>
