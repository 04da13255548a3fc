# The two commands of the README: `make run` (serve on https://localhost:8282) and `make test`.
.PHONY: install run test bench lint clean

STAMP := .venv/.installed

install: $(STAMP)

$(STAMP): hack/install.sh hack/constraints.txt hack/requirements-test.txt runtime/pyproject.toml
	bash hack/install.sh
	touch $@

run: install
	.venv/bin/avatar-runtime serve $(ARGS)

test: install
	bash hack/test.sh $(ARGS)

bench: install
	.venv/bin/python hack/bench/voice_to_voice.py $(ARGS)

lint: install
	.venv/bin/ruff check runtime tests hack

clean:
	rm -rf .venv certs
