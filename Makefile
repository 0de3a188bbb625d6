# Tokyo GeoTwin — the two README commands (`make run`, `make test`) and `make bench`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test bench lint typecheck clean build-demo build-real setup mutation

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

VENDOR := geoservice/web/static/vendor/.bundled

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Front-end libraries from npm, copied into the package's static files (no CDN at run time).
$(VENDOR): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p geoservice/web/static/vendor
	cp node_modules/maplibre-gl/dist/maplibre-gl.js node_modules/maplibre-gl/dist/maplibre-gl.css \
	   node_modules/maplibre-gl/LICENSE.txt geoservice/web/static/vendor/
	# Swagger UI for /docs and /ogc/openapi?f=html (started by static/swagger-init.js).
	mkdir -p geoservice/web/static/vendor/swagger-ui
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
	   node_modules/swagger-ui-dist/LICENSE geoservice/web/static/vendor/swagger-ui/
	# CesiumJS for the 3D viewer (/3d/): the IIFE build and what it loads at run time (~13 MB;
	# the ESM/CJS bundles in Build/Cesium are not needed).
	rm -rf geoservice/web/static/vendor/cesium
	mkdir -p geoservice/web/static/vendor/cesium
	cp -r node_modules/cesium/Build/Cesium/{Cesium.js,Workers,Assets,ThirdParty,Widgets} \
	   node_modules/cesium/LICENSE.md geoservice/web/static/vendor/cesium/
	touch $(VENDOR)

setup: $(STAMP) $(VENDOR)

build-demo: $(STAMP) $(VENDOR)
	$(BIN)/geoservice build --mirror data/demo --if-stale

build-real: $(STAMP)
	$(BIN)/geoservice build --mirror ../shared/data

run: build-demo
	PORT=$(PORT) $(BIN)/geoservice serve

lint: $(STAMP)
	$(BIN)/ruff check geoservice tests tools bench
	$(BIN)/mypy geoservice
	# the seams rooms plug into carry no Any (issue 16): runtime and every config section
	$(BIN)/mypy --strict --disallow-any-explicit --follow-imports=silent \
		geoservice/runtime.py geoservice/config.py geoservice/reinfolib/settings.py

test: $(STAMP) $(VENDOR) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Mutation check of the guide rules (CI runs it after the tests): every comparator flipped
# and every threshold moved by one unit, one at a time, must make a guide test fail.
mutation: $(STAMP)
	$(BIN)/python tools/mutation.py

# Every benchmark prints its own table; each compares against its named anchor in the same run.
# wrk (Debian) drives bench/postgis.py; installed here when we may (root), else the
# benchmark falls back to a Python load client and says so.
bench: $(STAMP) $(VENDOR)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk >/dev/null; } || true
	@dpkg -s libsqlite3-mod-spatialite >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -q libsqlite3-mod-spatialite >/dev/null; } || true
	$(BIN)/python bench/run.py        # OGC API Features vs pygeoapi's GeoJSON and SQLiteGPKG providers
	$(BIN)/python bench/guide.py      # procedure guide vs a naive geopandas overlay
	$(BIN)/python bench/reinfolib.py  # guide from the 不動産情報ライブラリ API: cold (50 ms/request) vs warm cache
	$(BIN)/python bench/hazards.py    # hazard card over HTTP (point, 1,000 m² polygon)
	$(BIN)/python bench/sightings.py  # create→webhook, reads under writes, CSV import
	$(BIN)/python bench/city3d.py     # CityGML → 3D Tiles on 100,000 synthetic buildings
	$(BIN)/python bench/postgis.py    # PostGIS + GeoPackage vs tipg and pygeoapi (needs PostGIS)
	$(BIN)/python bench/multihost.py  # 1/2/3 hosts on one PostgreSQL; webhooks while hosts are killed
	$(BIN)/python bench/scale.py      # 300,000 synthetic buildings: both stores vs tipg (needs PostGIS)
	$(BIN)/python bench/sql_tiles.py  # PostGIS tiles made on demand over 300,000 buildings vs tipg

clean:
	rm -rf data/build tiles/* tiles/.[!.]*.* .pytest_cache  # tilesets, their releases and staging
