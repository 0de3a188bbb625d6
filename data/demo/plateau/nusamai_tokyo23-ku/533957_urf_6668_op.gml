<?xml version="1.0" encoding="UTF-8"?>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" xmlns:gml="http://www.opengis.net/gml" xmlns:gen="http://www.opengis.net/citygml/generics/2.0" xmlns:bldg="http://www.opengis.net/citygml/building/2.0" xmlns:luse="http://www.opengis.net/citygml/landuse/2.0" xmlns:tran="http://www.opengis.net/citygml/transportation/2.0" xmlns:dem="http://www.opengis.net/citygml/relief/2.0" xmlns:app="http://www.opengis.net/citygml/appearance/2.0" xmlns:grp="http://www.opengis.net/citygml/cityobjectgroup/2.0" xmlns:xAL="urn:oasis:names:tc:ciq:xsdschema:xAL:2.0" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:urf="https://www.geospatial.jp/iur/urf/2.0" xsi:schemaLocation="https://www.geospatial.jp/iur/urf/2.0 ../../schemas/iur/urf/2.0/urbanFunction.xsd http://www.opengis.net/citygml/2.0 http://schemas.opengis.net/citygml/2.0/cityGMLBase.xsd http://www.opengis.net/citygml/generics/2.0 http://schemas.opengis.net/citygml/generics/2.0/generics.xsd http://www.opengis.net/gml http://schemas.opengis.net/gml/3.1.1/base/gml.xsd">
	<gml:boundedBy>
		<gml:Envelope srsName="http://www.opengis.net/def/crs/EPSG/0/6697" srsDimension="3">
			<gml:lowerCorner>35.752000000000 139.852000000000 0</gml:lowerCorner>
			<gml:upperCorner>35.771000000000 139.886000000000 0</gml:upperCorner>
		</gml:Envelope>
	</gml:boundedBy>
	<core:cityObjectMember>
		<urf:UseDistrict gml:id="urf_19dbd17a-aac1-4cc8-a532-e71c93aa26e6">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">1</urf:function>
			<urf:validFrom>2004-06-24</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">1</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>葛飾区告示第52号</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.752000000000 139.852000000000 0 35.752000000000 139.861312259221 0 35.761612483738 139.859374083368 0 35.761351278799 139.852000000000 0 35.752000000000 139.852000000000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:buildingCoverageRate>0.5</urf:buildingCoverageRate>
			<urf:floorAreaRate>1</urf:floorAreaRate>
		</urf:UseDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:UseDistrict gml:id="urf_c6e803c9-ad94-4062-a261-6850cccff5a3">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">3</urf:function>
			<urf:validFrom>2004-06-24</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">1</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>葛飾区告示第295号</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.752000000000 139.861312259221 0 35.752000000000 139.867987235572 0 35.762421052462 139.868707850078 0 35.761612483738 139.859374083368 0 35.752000000000 139.861312259221 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:buildingCoverageRate>0.6</urf:buildingCoverageRate>
			<urf:floorAreaRate>2</urf:floorAreaRate>
		</urf:UseDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:UseDistrict gml:id="urf_18752260-d69a-4549-aa89-4a78a6313bd1">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">5</urf:function>
			<urf:validFrom>2004-06-24</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">1</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>葛飾区告示第253号</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.752000000000 139.867987235572 0 35.752000000000 139.877734771243 0 35.761359297969 139.877937257668 0 35.762421052462 139.868707850078 0 35.752000000000 139.867987235572 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:buildingCoverageRate>0.6</urf:buildingCoverageRate>
			<urf:floorAreaRate>3</urf:floorAreaRate>
		</urf:UseDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:UseDistrict gml:id="urf_d9ff6240-4500-4aba-a66d-85820116355a">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">9</urf:function>
			<urf:validFrom>2004-06-24</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">1</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>葛飾区告示第153号</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.752000000000 139.877734771243 0 35.752000000000 139.886000000000 0 35.762740936068 139.886000000000 0 35.761359297969 139.877937257668 0 35.752000000000 139.877734771243 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:buildingCoverageRate>0.8</urf:buildingCoverageRate>
			<urf:floorAreaRate>3</urf:floorAreaRate>
		</urf:UseDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:UseDistrict gml:id="urf_65de9a2c-a809-4852-a280-a6e946dbc132">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">2</urf:function>
			<urf:validFrom>2004-06-24</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">1</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>葛飾区告示第209号</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.761351278799 139.852000000000 0 35.761612483738 139.859374083368 0 35.771000000000 139.861033727006 0 35.771000000000 139.852000000000 0 35.761351278799 139.852000000000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:buildingCoverageRate>0.6</urf:buildingCoverageRate>
			<urf:floorAreaRate>1.5</urf:floorAreaRate>
		</urf:UseDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:UseDistrict gml:id="urf_846c5478-e72c-4dd6-abe4-80f3e0a46c74">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">5</urf:function>
			<urf:validFrom>2004-06-24</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">1</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>葛飾区告示第114号</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.761612483738 139.859374083368 0 35.762421052462 139.868707850078 0 35.771000000000 139.868061818574 0 35.771000000000 139.861033727006 0 35.761612483738 139.859374083368 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:buildingCoverageRate>0.6</urf:buildingCoverageRate>
			<urf:floorAreaRate>3</urf:floorAreaRate>
		</urf:UseDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:UseDistrict gml:id="urf_058a1fb6-a816-4a6e-a6a8-c5d0a1c774a0">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">10</urf:function>
			<urf:validFrom>2004-06-24</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">1</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>葛飾区告示第264号</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.762421052462 139.868707850078 0 35.761359297969 139.877937257668 0 35.771000000000 139.877035330686 0 35.771000000000 139.868061818574 0 35.762421052462 139.868707850078 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:buildingCoverageRate>0.8</urf:buildingCoverageRate>
			<urf:floorAreaRate>5</urf:floorAreaRate>
		</urf:UseDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:UseDistrict gml:id="urf_25ac1c3e-6567-478d-a50f-f5638978a7ff">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">11</urf:function>
			<urf:validFrom>2004-06-24</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">1</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>葛飾区告示第260号</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.761359297969 139.877937257668 0 35.762740936068 139.886000000000 0 35.771000000000 139.886000000000 0 35.771000000000 139.877035330686 0 35.761359297969 139.877937257668 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:buildingCoverageRate>0.6</urf:buildingCoverageRate>
			<urf:floorAreaRate>2</urf:floorAreaRate>
		</urf:UseDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:HeightControlDistrict gml:id="urf_443fb323-95ad-4856-ad47-5ac09ca90235">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">18</urf:function>
			<urf:validFrom>0001-01-01</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">9</urf:validFromType>
			<urf:custodian>不明</urf:custodian>
			<urf:notificationNumber>不明</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.752000000000 139.852000000000 0 35.752000000000 139.861312259221 0 35.752000000000 139.867987235572 0 35.762421052462 139.868707850078 0 35.761612483738 139.859374083368 0 35.761351278799 139.852000000000 0 35.752000000000 139.852000000000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:maximumBuildingHeight uom="m">17</urf:maximumBuildingHeight>
		</urf:HeightControlDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:HeightControlDistrict gml:id="urf_db158ffe-5b96-4147-a929-7815a3cab510">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">18</urf:function>
			<urf:validFrom>0001-01-01</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">9</urf:validFromType>
			<urf:custodian>不明</urf:custodian>
			<urf:notificationNumber>不明</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.761351278799 139.852000000000 0 35.761612483738 139.859374083368 0 35.762421052462 139.868707850078 0 35.771000000000 139.868061818574 0 35.771000000000 139.861033727006 0 35.771000000000 139.852000000000 0 35.761351278799 139.852000000000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:maximumBuildingHeight uom="m">20</urf:maximumBuildingHeight>
		</urf:HeightControlDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:HeightControlDistrict gml:id="urf_0544579f-fa60-4fe2-ac0e-6136ca478766">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">18</urf:function>
			<urf:validFrom>0001-01-01</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">9</urf:validFromType>
			<urf:custodian>不明</urf:custodian>
			<urf:notificationNumber>不明</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.752000000000 139.867987235572 0 35.752000000000 139.877734771243 0 35.752000000000 139.886000000000 0 35.762740936068 139.886000000000 0 35.761359297969 139.877937257668 0 35.762421052462 139.868707850078 0 35.752000000000 139.867987235572 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
			<urf:maximumBuildingHeight uom="m">30</urf:maximumBuildingHeight>
			<urf:minimumBuildingHeight uom="m">7</urf:minimumBuildingHeight>
		</urf:HeightControlDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:FirePreventionDistrict gml:id="urf_d1237b35-a655-422b-ad66-e55a459fb455">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">24</urf:function>
			<urf:validFrom>0001-01-01</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">9</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>不明</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.752000000000 139.877734771243 0 35.752000000000 139.886000000000 0 35.762740936068 139.886000000000 0 35.761359297969 139.877937257668 0 35.752000000000 139.877734771243 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
		</urf:FirePreventionDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:FirePreventionDistrict gml:id="urf_9d261ea2-c550-40f7-a8ff-e75536e0e8b8">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">25</urf:function>
			<urf:validFrom>0001-01-01</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">9</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>不明</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.752000000000 139.852000000000 0 35.752000000000 139.861312259221 0 35.752000000000 139.867987235572 0 35.752000000000 139.877734771243 0 35.761359297969 139.877937257668 0 35.762421052462 139.868707850078 0 35.761612483738 139.859374083368 0 35.761351278799 139.852000000000 0 35.752000000000 139.852000000000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
		</urf:FirePreventionDistrict>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<urf:FirePreventionDistrict gml:id="urf_b15d830a-e5c6-467d-a07f-64a89a746ee2">
			<urf:function codeSpace="../../codelists/Common_districtsAndZonesType.xml">25</urf:function>
			<urf:validFrom>0001-01-01</urf:validFrom>
			<urf:validFromType codeSpace="../../codelists/Common_validType.xml">9</urf:validFromType>
			<urf:custodian>東京都</urf:custodian>
			<urf:notificationNumber>不明</urf:notificationNumber>
			<urf:prefecture codeSpace="../../codelists/Common_localPublicAuthorities.xml">13</urf:prefecture>
			<urf:city codeSpace="../../codelists/Common_localPublicAuthorities.xml">13122</urf:city>
			<urf:lod1MultiSurface>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.761351278799 139.852000000000 0 35.761612483738 139.859374083368 0 35.762421052462 139.868707850078 0 35.761359297969 139.877937257668 0 35.762740936068 139.886000000000 0 35.771000000000 139.886000000000 0 35.771000000000 139.877035330686 0 35.771000000000 139.868061818574 0 35.771000000000 139.861033727006 0 35.771000000000 139.852000000000 0 35.761351278799 139.852000000000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</urf:lod1MultiSurface>
		</urf:FirePreventionDistrict>
	</core:cityObjectMember>
</core:CityModel>
