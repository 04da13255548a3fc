# The two commands of the README: `make run` (serve on https://localhost:8282) and `make test`.
.PHONY: install run test bench demo lint manifests clean

STAMP := .venv/.installed
TEST_STAMP := .venv/.installed-test
INSTALL_INPUTS := hack/install.sh hack/lib.sh hack/constraints.txt hack/requirements-test.txt runtime/pyproject.toml \
	operator/pyproject.toml \
	web/package-lock.json hack/make_default_avatar.py $(wildcard web/src/*.js web/src/*/*.js web/*.html)

install: $(STAMP)

$(STAMP): $(INSTALL_INPUTS)
	bash hack/install.sh
	touch $@

$(TEST_STAMP): $(STAMP) hack/install-test.sh hack/install-helm.sh
	bash hack/install-test.sh
	touch $@

run: install
	.venv/bin/avatar-runtime serve $(ARGS)

test: $(TEST_STAMP)
	bash hack/test.sh $(ARGS)

bench: $(TEST_STAMP)
	.venv/bin/python hack/bench/run_all.py $(ARGS)

# docs/demo/: the README's frames of the default avatar in a conversation, recorded in headless Chromium (~1 min)
demo: $(TEST_STAMP)
	.venv/bin/python hack/demo/record_demo.py $(ARGS)

lint: $(TEST_STAMP)
	.venv/bin/ruff check runtime operator tests hack
	.venv/bin/helm lint --strict charts/gaussian-avatar
	.venv/bin/hadolint Dockerfile.runtime Dockerfile.operator
	.venv/bin/shellcheck hack/*.sh

# operator/deploy/operator.yaml and the chart's copy of crds/ are rendered from the chart (a test checks they are fresh)
manifests: $(TEST_STAMP)
	bash hack/render-deploy-manifests.sh

clean:
	rm -rf .venv certs web/dist web/node_modules avatars/default.zip
