# Finetune Studio. The two commands a newcomer needs: `make dev` and `make test`.
.PHONY: dev test bench setup lint i18n clean

dev:  ## run the whole app locally (SQLite, local folder storage, local Redis) at http://127.0.0.1:5000
	@scripts/dev.sh

test:  ## install test tools, make sure PostgreSQL and Redis are up, run the whole suite
	@scripts/test.sh

bench:  ## run the benchmarks (benchmarks/bench_*.py) and print their tables
	@scripts/bench.sh

setup:  ## only create the virtualenv and fetch the front-end files
	@scripts/setup.sh dev

i18n:  ## extract the marked strings, update translations/*/messages.po, compile them (docs/DEVELOPMENT.md)
	@scripts/setup.sh dev && scripts/i18n.sh

lint:  ## ruff over the code
	@scripts/setup.sh dev && .venv/bin/ruff check .

clean:  ## remove the virtualenv, node packages and built front-end files (keeps data/)
	rm -rf .venv node_modules static/vendor
