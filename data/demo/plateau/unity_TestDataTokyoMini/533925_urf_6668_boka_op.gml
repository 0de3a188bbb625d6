<?xml version="1.0" encoding="UTF-8"?>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" xmlns:gml="http://www.opengis.net/gml" xmlns:gen="http://www.opengis.net/citygml/generics/2.0" xmlns:bldg="http://www.opengis.net/citygml/building/2.0" xmlns:luse="http://www.opengis.net/citygml/landuse/2.0" xmlns:tran="http://www.opengis.net/citygml/transportation/2.0" xmlns:dem="http://www.opengis.net/citygml/relief/2.0" xmlns:app="http://www.opengis.net/citygml/appearance/2.0" xmlns:grp="http://www.opengis.net/citygml/cityobjectgroup/2.0" xmlns:xAL="urn:oasis:names:tc:ciq:xsdschema:xAL:2.0" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:urf="http://www.kantei.go.jp/jp/singi/tiiki/toshisaisei/itoshisaisei/iur/urf/1.4" xmlns:uro="http://www.kantei.go.jp/jp/singi/tiiki/toshisaisei/itoshisaisei/iur/uro/1.4" xsi:schemaLocation="http://www.kantei.go.jp/jp/singi/tiiki/toshisaisei/itoshisaisei/iur/urf/1.4 http://www.kantei.go.jp/jp/singi/tiiki/toshisaisei/itoshisaisei/iur/schemas/urf/1.4/urbanFunction.xsd http://www.opengis.net/citygml/2.0 http://schemas.opengis.net/citygml/2.0/cityGMLBase.xsd http://www.opengis.net/citygml/generics/2.0 http://schemas.opengis.net/citygml/generics/2.0/generics.xsd http://www.opengis.net/gml http://schemas.opengis.net/gml/3.1.1/base/gml.xsd">
	<gml:boundedBy>
		<gml:Envelope srsName="http://www.opengis.net/def/crs/EPSG/0/6668" srsDimension="3">
			<gml:lowerCorner>35.561000000000 139.688000000000 0</gml:lowerCorner>
			<gml:upperCorner>35.577000000000 139.721000000000 0</gml:upperCorner>
		</gml:Envelope>
	</gml:boundedBy>
	<core:cityObjectMember>
		<urf:DistrictsAndZones gml:id="urf_7c25b40e-4719-4746-a42c-b52cff4d3303">
			<urf:class codeSpace="../../codelists/Common_districtsAndZonesType.xml">24</urf:class>
			<urf:urbanPlanType codeSpace="../../codelists/Common_urbanPlanType.xml">21</urf:urbanPlanType>
			<urf:prefecture codeSpace="../../codelists/Common_prefecture.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13111</urf:city>
			<urf:lod0MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.561000000000 139.709578870798 0 35.561000000000 139.721000000000 0 35.568992430038 139.721000000000 0 35.569398301462 139.709932838698 0 35.561000000000 139.709578870798 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod0MultiSurface>
		</urf:DistrictsAndZones>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:DistrictsAndZones gml:id="urf_6e020e7e-c7d5-4471-afc7-eb0132c41759">
			<urf:class codeSpace="../../codelists/Common_districtsAndZonesType.xml">25</urf:class>
			<urf:urbanPlanType codeSpace="../../codelists/Common_urbanPlanType.xml">21</urf:urbanPlanType>
			<urf:prefecture codeSpace="../../codelists/Common_prefecture.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13111</urf:city>
			<urf:lod0MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.561000000000 139.688000000000 0 35.561000000000 139.700382936743 0 35.561000000000 139.709578870798 0 35.569398301462 139.709932838698 0 35.569775320363 139.697904400345 0 35.567875027085 139.688000000000 0 35.561000000000 139.688000000000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod0MultiSurface>
		</urf:DistrictsAndZones>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:DistrictsAndZones gml:id="urf_f8362720-aee0-4ad5-af76-5f4e37da018a">
			<urf:class codeSpace="../../codelists/Common_districtsAndZonesType.xml">25</urf:class>
			<urf:urbanPlanType codeSpace="../../codelists/Common_urbanPlanType.xml">21</urf:urbanPlanType>
			<urf:prefecture codeSpace="../../codelists/Common_prefecture.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13111</urf:city>
			<urf:lod0MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.567875027085 139.688000000000 0 35.569775320363 139.697904400345 0 35.569398301462 139.709932838698 0 35.568992430038 139.721000000000 0 35.577000000000 139.721000000000 0 35.577000000000 139.709931530633 0 35.577000000000 139.700054742520 0 35.577000000000 139.688000000000 0 35.567875027085 139.688000000000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod0MultiSurface>
		</urf:DistrictsAndZones>
	</core:cityObjectMember>
</core:CityModel>
