# Archipelago: the two commands a newcomer needs are `make lab` and `make test`.
# Everything else here is a step of those two.

SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export CONTAINERS_CONF := $(CURDIR)/lab/containers.conf
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ARCHIPELAGO_CACHE ?= /var/cache/archipelago

.PHONY: setup prerequisites host-packages go-toolchain lab lab-up lab-down artifacts test lint unit molecule bench bench-dataplane clean

# Python tooling in a virtualenv; reinstalled only when requirements.txt changes.
$(BIN)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# What setup cannot install (Debian 12, root or sudo, free disk, inotify), checked before anything long starts:
# the first one missing stops here with one line saying how to fix it.
prerequisites:
	scripts/prerequisites.sh

# Debian packages the controller needs for the lab (podman, runc, debootstrap, python3-venv, gcc, ...).
host-packages: prerequisites
	scripts/setup-host.sh

# A Go for the artifacts: the go on PATH if new enough, else the pinned toolchain fetched into $(ARCHIPELAGO_CACHE)/go/toolchain.
go-toolchain: host-packages
	scripts/go-toolchain.py

# In this order: the virtualenv needs Debian's python3-venv from host-packages.
setup: prerequisites host-packages go-toolchain $(BIN)/.installed

# The main job: bring the lab up from nothing and run site.yml against it.
lab: setup artifacts lab-up
	ansible-playbook -i inventories/lab site.yml

lab-up: setup
	ansible-playbook playbooks/lab.yml

lab-down: setup
	ansible-playbook playbooks/lab.yml -e lab_state=absent

# Offline Kubernetes artifacts (binaries and images), built from Go modules into $(ARCHIPELAGO_CACHE): versions.yml's
# Kubernetes, then every other version an inventory or scenario under KUBERNETES_INVENTORIES names with
# `kubernetes_version:` (the cluster scenario's older one, which it upgrades from). Calico's images too (--calico,
# minutes of Go) when one of CALICO_INVENTORIES sets `cni: calico`: the lab inventory for `make lab`, the molecule
# scenarios as well for `make test` and `make bench-dataplane`. Each is skipped when already built.
# MetalLB's images likewise (--metallb) when one of them sets `metallb_enabled: true`, Traefik's (--traefik) when one
# sets `traefik_enabled: true`.
CALICO_INVENTORIES ?= inventories/lab
KUBERNETES_INVENTORIES ?= inventories molecule
artifacts: host-packages go-toolchain
	scripts/build-artifacts.sh $(if $(shell grep -rlsE '^[[:space:]]*cni:[[:space:]]*calico' $(CALICO_INVENTORIES)),--calico) \
		$(if $(shell grep -rlsE '^[[:space:]]*metallb_enabled:[[:space:]]*true' $(CALICO_INVENTORIES)),--metallb) \
		$(if $(shell grep -rlsE '^[[:space:]]*traefik_enabled:[[:space:]]*true' $(CALICO_INVENTORIES)),--traefik)
	for version in $$(scripts/artifacts/inventory-versions.sh $(KUBERNETES_INVENTORIES)); do \
		KUBERNETES_VERSION=$$version scripts/build-artifacts.sh || exit 1; \
	done

# Everything CI runs. The lab is brought up (and left up) so the lab safety tests run against it.
test: export ARCHIPELAGO_REQUIRE_LAB = 1
test: CALICO_INVENTORIES = inventories/lab molecule
test: setup artifacts lint lab-up unit molecule

lint: $(BIN)/.installed
	ruff check .
	yamllint --strict .
	ansible-lint

unit: $(BIN)/.installed
	pytest tests

molecule: setup
	scripts/molecule-all.sh

bench: $(BIN)/.installed
	python benchmarks/plan_scale.py

# Flat vs island data paths, and Calico across nodes vs same node, in the flat and island molecule labs (left up afterwards:
# `molecule destroy -s flat; molecule destroy -s island`).
bench-dataplane: CALICO_INVENTORIES = molecule/flat
bench-dataplane: setup artifacts
	molecule converge -s island
	molecule converge -s flat
	python benchmarks/dataplane.py --rounds 5
