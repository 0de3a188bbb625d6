<?xml version="1.0" encoding="UTF-8"?>
<core:CityModel xmlns:core="http://www.opengis.net/citygml/2.0" xmlns:gml="http://www.opengis.net/gml" xmlns:gen="http://www.opengis.net/citygml/generics/2.0" xmlns:bldg="http://www.opengis.net/citygml/building/2.0" xmlns:luse="http://www.opengis.net/citygml/landuse/2.0" xmlns:tran="http://www.opengis.net/citygml/transportation/2.0" xmlns:dem="http://www.opengis.net/citygml/relief/2.0" xmlns:app="http://www.opengis.net/citygml/appearance/2.0" xmlns:grp="http://www.opengis.net/citygml/cityobjectgroup/2.0" xmlns:xAL="urn:oasis:names:tc:ciq:xsdschema:xAL:2.0" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:uro="http://www.kantei.go.jp/jp/singi/tiiki/toshisaisei/itoshisaisei/iur/uro/1.4" xsi:schemaLocation="http://www.opengis.net/citygml/2.0 http://schemas.opengis.net/citygml/2.0/cityGMLBase.xsd http://www.opengis.net/citygml/generics/2.0 http://schemas.opengis.net/citygml/generics/2.0/generics.xsd http://www.opengis.net/gml http://schemas.opengis.net/gml/3.1.1/base/gml.xsd">
	<gml:boundedBy>
		<gml:Envelope srsName="http://www.opengis.net/def/crs/EPSG/0/6668" srsDimension="3">
			<gml:lowerCorner>35.559795500000 139.694090800000 0</gml:lowerCorner>
			<gml:upperCorner>35.577125400000 139.718631700000 0</gml:upperCorner>
		</gml:Envelope>
	</gml:boundedBy>
	<core:cityObjectMember>
		<gen:GenericCityObject gml:id="lsid_e06c34db-5d29-4287-a1c1-6682b06cf979">
			<gml:name codeSpace="../../codelists/genericCityObject_name.xml">1</gml:name>
			<gen:genericAttributeSet name="土砂災害警戒区域">
				<gen:stringAttribute name="区域区分">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="現象の種類">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="都道府県コード">
					<gen:value>13</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域番号">
					<gen:value>111001-K024</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域名">
					<gen:value>-</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="所在地">
					<gen:value>大田区池上1</gen:value>
				</gen:stringAttribute>
				<gen:dateAttribute name="告示日">
					<gen:value>2019-04-28</gen:value>
				</gen:dateAttribute>
				<gen:stringAttribute name="特別警戒未指定フラグ">
					<gen:value>0</gen:value>
				</gen:stringAttribute>
			</gen:genericAttributeSet>
			<gen:lod0Geometry>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.570455300000 139.695649000000 0 35.570688300000 139.695566500000 0 35.570720900000 139.694967400000 0 35.570637400000 139.694499000000 0 35.570455300000 139.694090800000 0 35.570249500000 139.694438300000 0 35.570165000000 139.694967400000 0 35.570291900000 139.695387300000 0 35.570455300000 139.695649000000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</gen:lod0Geometry>
		</gen:GenericCityObject>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<gen:GenericCityObject gml:id="lsid_492adc1b-23df-44c3-ae18-adefcc3ca8a6">
			<gml:name codeSpace="../../codelists/genericCityObject_name.xml">1</gml:name>
			<gen:genericAttributeSet name="土砂災害警戒区域">
				<gen:stringAttribute name="区域区分">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="現象の種類">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="都道府県コード">
					<gen:value>13</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域番号">
					<gen:value>111001-K028</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域名">
					<gen:value>-</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="所在地">
					<gen:value>大田区池上3</gen:value>
				</gen:stringAttribute>
				<gen:dateAttribute name="告示日">
					<gen:value>2016-10-27</gen:value>
				</gen:dateAttribute>
				<gen:stringAttribute name="特別警戒未指定フラグ">
					<gen:value>0</gen:value>
				</gen:stringAttribute>
			</gen:genericAttributeSet>
			<gen:lod0Geometry>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.564054900000 139.706316400000 0 35.564242800000 139.706063700000 0 35.564318100000 139.705580700000 0 35.564282900000 139.704994500000 0 35.564054900000 139.704685100000 0 35.563850100000 139.705054100000 0 35.563728000000 139.705580700000 0 35.563838700000 139.706136800000 0 35.564054900000 139.706316400000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</gen:lod0Geometry>
		</gen:GenericCityObject>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<gen:GenericCityObject gml:id="lsid_48df419c-2c54-4f61-a533-8c99adbf1000">
			<gml:name codeSpace="../../codelists/genericCityObject_name.xml">1</gml:name>
			<gen:genericAttributeSet name="土砂災害警戒区域">
				<gen:stringAttribute name="区域区分">
					<gen:value>2</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="現象の種類">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="都道府県コード">
					<gen:value>13</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域番号">
					<gen:value>111001-K032</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域名">
					<gen:value>-</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="所在地">
					<gen:value>大田区久が原2</gen:value>
				</gen:stringAttribute>
				<gen:dateAttribute name="告示日">
					<gen:value>2017-12-29</gen:value>
				</gen:dateAttribute>
				<gen:stringAttribute name="特別警戒未指定フラグ">
					<gen:value>0</gen:value>
				</gen:stringAttribute>
			</gen:genericAttributeSet>
			<gen:lod0Geometry>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.566156600000 139.702781200000 0 35.566320200000 139.702308800000 0 35.566430800000 139.701888200000 0 35.566328400000 139.701446400000 0 35.566156600000 139.701054700000 0 35.565928500000 139.701301600000 0 35.565836200000 139.701888200000 0 35.565986600000 139.702325400000 0 35.566156600000 139.702781200000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</gen:lod0Geometry>
		</gen:GenericCityObject>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<gen:GenericCityObject gml:id="lsid_d97d7a4c-5484-4d49-a2b8-a1d8c8c6098b">
			<gml:name codeSpace="../../codelists/genericCityObject_name.xml">1</gml:name>
			<gen:genericAttributeSet name="土砂災害警戒区域">
				<gen:stringAttribute name="区域区分">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="現象の種類">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="都道府県コード">
					<gen:value>13</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域番号">
					<gen:value>111001-K036</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域名">
					<gen:value>-</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="所在地">
					<gen:value>大田区南雪谷5</gen:value>
				</gen:stringAttribute>
				<gen:dateAttribute name="告示日">
					<gen:value>2017-02-18</gen:value>
				</gen:dateAttribute>
				<gen:stringAttribute name="特別警戒未指定フラグ">
					<gen:value>0</gen:value>
				</gen:stringAttribute>
			</gen:genericAttributeSet>
			<gen:lod0Geometry>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.576829400000 139.711346700000 0 35.577021700000 139.711250200000 0 35.577125400000 139.710755700000 0 35.577012600000 139.710284700000 0 35.576829400000 139.710107500000 0 35.576606700000 139.710183100000 0 35.576553600000 139.710755700000 0 35.576667400000 139.711172400000 0 35.576829400000 139.711346700000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</gen:lod0Geometry>
		</gen:GenericCityObject>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<gen:GenericCityObject gml:id="lsid_d85a4e0b-683c-4075-ae2b-70085185970e">
			<gml:name codeSpace="../../codelists/genericCityObject_name.xml">1</gml:name>
			<gen:genericAttributeSet name="土砂災害警戒区域">
				<gen:stringAttribute name="区域区分">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="現象の種類">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="都道府県コード">
					<gen:value>13</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域番号">
					<gen:value>111001-K040</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域名">
					<gen:value>-</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="所在地">
					<gen:value>大田区田園調布1</gen:value>
				</gen:stringAttribute>
				<gen:dateAttribute name="告示日">
					<gen:value>2017-07-22</gen:value>
				</gen:dateAttribute>
				<gen:stringAttribute name="特別警戒未指定フラグ">
					<gen:value>0</gen:value>
				</gen:stringAttribute>
			</gen:genericAttributeSet>
			<gen:lod0Geometry>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.560063500000 139.701246800000 0 35.560239000000 139.700900200000 0 35.560298000000 139.700449000000 0 35.560291400000 139.699863100000 0 35.560063500000 139.699850000000 0 35.559835400000 139.699862300000 0 35.559795500000 139.700449000000 0 35.559826800000 139.701057800000 0 35.560063500000 139.701246800000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</gen:lod0Geometry>
		</gen:GenericCityObject>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<gen:GenericCityObject gml:id="lsid_d1b52680-8274-4750-a868-bed49b2f8156">
			<gml:name codeSpace="../../codelists/genericCityObject_name.xml">1</gml:name>
			<gen:genericAttributeSet name="土砂災害警戒区域">
				<gen:stringAttribute name="区域区分">
					<gen:value>2</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="現象の種類">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="都道府県コード">
					<gen:value>13</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域番号">
					<gen:value>111001-K044</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域名">
					<gen:value>-</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="所在地">
					<gen:value>大田区山王3</gen:value>
				</gen:stringAttribute>
				<gen:dateAttribute name="告示日">
					<gen:value>2017-09-25</gen:value>
				</gen:dateAttribute>
				<gen:stringAttribute name="特別警戒未指定フラグ">
					<gen:value>0</gen:value>
				</gen:stringAttribute>
			</gen:genericAttributeSet>
			<gen:lod0Geometry>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.561972700000 139.718631700000 0 35.562194100000 139.718573200000 0 35.562270300000 139.718004000000 0 35.562158300000 139.717526700000 0 35.561972700000 139.717140700000 0 35.561764200000 139.717467800000 0 35.561710900000 139.718004000000 0 35.561806300000 139.718432000000 0 35.561972700000 139.718631700000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</gen:lod0Geometry>
		</gen:GenericCityObject>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<gen:GenericCityObject gml:id="lsid_2ae789e5-24ba-4729-ab77-f2faf5b176b4">
			<gml:name codeSpace="../../codelists/genericCityObject_name.xml">1</gml:name>
			<gen:genericAttributeSet name="土砂災害警戒区域">
				<gen:stringAttribute name="区域区分">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="現象の種類">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="都道府県コード">
					<gen:value>13</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域番号">
					<gen:value>111001-K048</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域名">
					<gen:value>-</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="所在地">
					<gen:value>大田区中央6</gen:value>
				</gen:stringAttribute>
				<gen:dateAttribute name="告示日">
					<gen:value>2018-04-29</gen:value>
				</gen:dateAttribute>
				<gen:stringAttribute name="特別警戒未指定フラグ">
					<gen:value>0</gen:value>
				</gen:stringAttribute>
			</gen:genericAttributeSet>
			<gen:lod0Geometry>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.564168800000 139.700274700000 0 35.564399200000 139.699967700000 0 35.564434000000 139.699375100000 0 35.564367200000 139.698864800000 0 35.564168800000 139.698644300000 0 35.563960500000 139.698839400000 0 35.563828800000 139.699375100000 0 35.563981900000 139.699855700000 0 35.564168800000 139.700274700000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</gen:lod0Geometry>
		</gen:GenericCityObject>
	</core:cityObjectMember>
	<core:cityObjectMember>
		<gen:GenericCityObject gml:id="lsid_eef0a9b8-9276-4693-a3bd-b036046299f6">
			<gml:name codeSpace="../../codelists/genericCityObject_name.xml">1</gml:name>
			<gen:genericAttributeSet name="土砂災害警戒区域">
				<gen:stringAttribute name="区域区分">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="現象の種類">
					<gen:value>1</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="都道府県コード">
					<gen:value>13</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域番号">
					<gen:value>111001-K052</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="区域名">
					<gen:value>-</gen:value>
				</gen:stringAttribute>
				<gen:stringAttribute name="所在地">
					<gen:value>大田区上池台4</gen:value>
				</gen:stringAttribute>
				<gen:dateAttribute name="告示日">
					<gen:value>2019-09-05</gen:value>
				</gen:dateAttribute>
				<gen:stringAttribute name="特別警戒未指定フラグ">
					<gen:value>0</gen:value>
				</gen:stringAttribute>
			</gen:genericAttributeSet>
			<gen:lod0Geometry>
				<gml:MultiSurface>
					<gml:surfaceMember>
						<gml:Polygon>
							<gml:exterior>
								<gml:LinearRing>
									<gml:posList>35.574959100000 139.697526600000 0 35.575153400000 139.697233800000 0 35.575190900000 139.696734200000 0 35.575138700000 139.696272500000 0 35.574959100000 139.696031000000 0 35.574762800000 139.696229600000 0 35.574667700000 139.696734200000 0 35.574778200000 139.697199400000 0 35.574959100000 139.697526600000 0</gml:posList>
								</gml:LinearRing>
							</gml:exterior>
						</gml:Polygon>
					</gml:surfaceMember>
				</gml:MultiSurface>
			</gen:lod0Geometry>
		</gen:GenericCityObject>
	</core:cityObjectMember>
</core:CityModel>
