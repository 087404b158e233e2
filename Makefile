# tucked.sysext — the two commands of the README, and the pieces they are made of.
SHELL := /bin/bash
VENV  ?= $(CURDIR)/.venv

.PHONY: demo test bootstrap units sanity integration lint bench clean molecule

## demo: build a throw-away target root with sample extensions and show the gathered facts
demo:
	scripts/bootstrap.sh debs venv
	scripts/demo.sh

## test: the whole suite (what CI runs)
test:
	scripts/bootstrap.sh debs python-debs venv test-venv test-venv-216 test-venv-newest sid-root podman-collection test-hosts vm
	scripts/test.sh

bootstrap:
	scripts/bootstrap.sh

units sanity compat corpus integration faults lint:
	scripts/bootstrap.sh debs python-debs venv test-venv test-venv-216 test-venv-newest sid-root
	scripts/test.sh $@

## molecule: the molecule scenarios on disposable systemd hosts (one: make molecule SCENARIO=bootstrap)
molecule:
	scripts/bootstrap.sh debs venv podman-collection test-hosts
	scripts/link-collection.sh
	PATH=$(VENV)/bin:$$PATH ANSIBLE_CONFIG=$(CURDIR)/ansible.cfg $(VENV)/bin/molecule test $(if $(SCENARIO),-s $(SCENARIO),--all)

## bench: the full benchmarks (the test suite runs them in quick mode)
bench:
	scripts/bootstrap.sh debs venv sid-root
	scripts/link-collection.sh
	unshare --mount --propagation private -- $(VENV)/bin/python tests/bench/bench_plan.py
	$(VENV)/bin/python tests/bench/bench_refresh.py
	$(VENV)/bin/python tests/bench/bench_fleet.py
	$(VENV)/bin/python tests/bench/report.py

clean:
	rm -rf .build tests/output
