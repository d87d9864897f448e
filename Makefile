# Two commands do all set-up on a fresh machine: `make demo` runs the main job, `make test` runs the tests.
# Both create .venv and install what they need. torch is pinned to the CPU wheel that is on these machines.
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: demo test test-slow bench sysdeps clean

# Offscreen rendering needs EGL (Mesa); install it from Debian if it is missing and we may.
sysdeps:
	@dpkg -s libegl1 libgl1-mesa-dri libegl-mesa0 >/dev/null 2>&1 || \
	  ( command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libgl1-mesa-dri libegl-mesa0 ) || \
	  echo "warning: EGL libraries missing; rendering tests will fail"

$(STAMP): pyproject.toml | sysdeps
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tether pipeline

# --dist loadfile: a file's tests run on one worker, so a module's served robots and deploys share its DDS
# domains with no one (xdist_group marks are ignored by pytest 9 + xdist 3.8: they set a node id pytest 9 no
# longer reads). --no-loadscope-reorder: files in collection order, with tests/conftest.py's SCHEDULE first.
# The tests marked slow (the five slowest learning tests, 10.5 min of CPU) are left out so that the suite stays
# under 20 minutes (it took 15.0 and 20.4 min with three left out); `make test-slow` runs them.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m slow

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info
