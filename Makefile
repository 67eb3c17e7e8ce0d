# Two commands for a fresh Debian machine with Python 3.11 and no ROS:
#   make demo   set everything up, then run the tracker node on a shipped video
#   make test   set everything up, then run the tests
# Setup is idempotent: stamps under .venv/ skip the steps whose inputs did not change.
# ROS 2 distribution of the venv: kilted (default, .venv) or jazzy (.venv-jazzy), e.g.
#   make test ROS_DISTRO=jazzy
# A shell with a ROS 2 install sourced sets ROS_DISTRO itself; pass it here to choose.

PYTHON ?= python3
ROS_DISTRO ?= kilted
ifeq ($(ROS_DISTRO),kilted)
VENV := .venv
REQUIREMENTS := requirements.txt
else ifeq ($(ROS_DISTRO),jazzy)
VENV := .venv-jazzy
REQUIREMENTS := requirements-jazzy.txt
else
$(error ROS_DISTRO=$(ROS_DISTRO): the PyPI wheels exist for kilted and jazzy only; on a robot with ROS 2 installed build with colcon instead (README))
endif
VPY := $(VENV)/bin/python
TORCH_VERSION := 2.13.0
# Only ament/rosidl CMake configs in the venv are searched: no ROS install is needed.
ROS_ENV := AMENT_PREFIX_PATH=$(abspath $(VENV)) CMAKE_PREFIX_PATH=$(abspath $(VENV))
PYTEST_ARGS ?=

.PHONY: setup demo test interfaces clean

setup: $(VENV)/.stamp-interfaces

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	touch $@

$(VENV)/.stamp-deps: $(REQUIREMENTS) requirements-python.txt setup.py $(VENV)/.stamp-venv
	$(VPY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(VPY) -m pip install --quiet -r $(REQUIREMENTS)
	$(VPY) -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	touch $@

# Builds msg/ and srv/ with rosidl into the venv (headers, libraries, Python modules).
# The generated site-packages/taptr_ros/__init__.py is removed so that the editable
# sources' package (which extends __path__) is the one Python imports.
$(VENV)/.stamp-interfaces: $(VENV)/.stamp-deps CMakeLists.txt package.xml $(wildcard msg/*.msg srv/*.srv)
	mkdir -p build
	$(ROS_ENV) cmake -S . -B build/$(VENV) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	  -DPython3_EXECUTABLE=$(abspath $(VPY)) -DTAPTR_INSTALL_PYTHON_PACKAGE=OFF \
	  -DBUILD_TESTING=OFF > build/cmake-configure$(VENV).log 2>&1 || (cat build/cmake-configure$(VENV).log; exit 1)
	$(ROS_ENV) cmake --build build/$(VENV) --target install -j2 > build/cmake-build$(VENV).log 2>&1 || (tail -n 50 build/cmake-build$(VENV).log; exit 1)
	rm -f $(VENV)/lib/python3*/site-packages/taptr_ros/__init__.py
	touch $@

demo: setup
	$(VENV)/bin/taptr demo

test: setup
	$(VPY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build install log
