# tucked.sysext — the two commands of the README, and the pieces they are made of.
SHELL := /bin/bash
VENV  ?= $(CURDIR)/.venv

.PHONY: demo test bootstrap units sanity integration lint bench clean

## demo: build a throw-away target root with sample extensions and show the gathered facts
demo:
	scripts/bootstrap.sh debs venv
	scripts/demo.sh

## test: the whole suite (what CI runs)
test:
	scripts/bootstrap.sh debs venv sid-root
	scripts/test.sh

bootstrap:
	scripts/bootstrap.sh

units sanity integration lint bench:
	scripts/bootstrap.sh debs venv sid-root
	scripts/test.sh $@

clean:
	rm -rf .build tests/output
