# The two commands a fresh machine needs (see README): `make run` and `make test`.
# Everything is in dev/scripts so CI, the Makefile and a person run the same steps.
.PHONY: run test build bench toolchain docker-stop

run:
	dev/scripts/run.sh

test:
	dev/scripts/test.sh

build: toolchain
	dev/scripts/build.sh

toolchain:
	dev/scripts/toolchain.sh

# Stops the Docker engine only if bss-control started it.
docker-stop:
	dev/scripts/docker.sh stop

# Speed figures as ratios against a baseline measured in the same run (not part of CI).
bench:
	dev/scripts/bench.sh
