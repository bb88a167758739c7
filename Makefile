# ISM — make targets. `make demo` runs the main job, `make test` the tests;
# both install what they need first (Debian packages, as root).

GO        ?= go
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
STATICCHECK_VERSION := v0.8.2
# Debian packages the tests and the demo use.
DEB_PACKAGES := strongswan-charon strongswan-swanctl libcharon-extra-plugins \
	libstrongswan-standard-plugins libstrongswan-extra-plugins tshark iperf3 \
	iproute2 iputils-ping python3-scapy snmptrapd snmp dpdk dpdk-dev libdpdk-dev \
	libipsec-mb1 pkg-config tcpdump python3-cryptography qemu-system-x86 busybox-static \
	etcd-server etcd-client
TEST_FLAGS ?= -count=1 -race -timeout 15m

.PHONY: all build test test-kernel bench lint demo deps fuzz clean

all: build

## deps: install the Debian packages the tests need (idempotent; root)
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		[ "$$(id -u)" = 0 ] || { echo "make deps: run as root to install $$missing" >&2; exit 1; }; \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

## build: bin/ismd (pure Go), bin/ismd-dpdk (with DPDK, when libdpdk is present), bin/ismctl, bin/ismbench
build:
	$(GO) build -o bin/ ./cmd/...
	@if pkg-config --exists libdpdk 2>/dev/null; then \
		echo "$(GO) build -tags dpdk -o bin/ismd-dpdk ./cmd/ismd"; \
		$(GO) build -tags dpdk -o bin/ismd-dpdk ./cmd/ismd; \
	fi

## test: every test, DPDK-tagged ones included
test: deps
	$(GO) vet ./...
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	echo "$(GO) test $(TEST_FLAGS) ./..."; \
	if ! bash -o pipefail -c '$(GO) test $(TEST_FLAGS) ./... 2>&1 | tee '$$log; then \
		echo "== what failed (each failing test, then its messages by file:line)"; \
		grep -aE '^ *--- FAIL|^FAIL|^panic:' $$log; \
		grep -aE '^ +[a-z_0-9]+_test\.go:[0-9]+: ' $$log | cut -c1-300 | tail -40; \
		exit 1; \
	fi
	$(GO) test $(TEST_FLAGS) -tags dpdk ./driver/dpdk/...
	$(GO) test $(TEST_FLAGS) -tags dpdk -run DPDK ./ism/
	$(MAKE) --no-print-directory test-kernel

## test-kernel: the kernel offload tests (AF_ALG lookaside, XFRM protocol
## offload) in a QEMU guest booted with Debian's stock kernel, which has the
## ESP, AH and AF_ALG modules this host's kernel may lack
## (driver/kernel/testdata/vm/run.sh; emulated, as nested KVM does not boot
## everywhere). The guest's console goes to a log, shown when a run fails.
test-kernel: deps
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for run in "./driver/kernel|" "./ism|-test.run TestXFRM"; do \
		pkg=$${run%%|*}; args=$${run#*|}; \
		echo "ISM_VM_TCG=1 ISM_VM_PKG=$$pkg bash driver/kernel/testdata/vm/run.sh $$args"; \
		if ISM_VM_TCG=1 ISM_VM_PKG=$$pkg bash driver/kernel/testdata/vm/run.sh $$args > $$log 2>&1; then \
			echo "ok (in the guest: $$(grep -acE '^ *--- PASS' $$log) passed, $$(grep -acE '^ *--- SKIP' $$log) skipped)"; \
			grep -aE '^--- SKIP' -B1 $$log | grep -av '^--- SKIP' || true; \
		else \
			cat $$log; echo "FAIL: $$pkg in the guest"; exit 1; \
		fi; \
	done

## bench: the Go benchmarks of the engine and the ismbench engine table
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1s ./offload/
	$(GO) run ./cmd/ismbench engine

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags dpdk ./driver/dpdk/...
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...
	staticcheck -tags dpdk ./driver/dpdk/...

## demo: two gateways in two namespaces, two manual tunnels, pings, show output (root)
demo: deps build
	./scripts/demo.sh

## fuzz: run each fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	@for t in $$(grep -rho 'func Fuzz[A-Za-z0-9]*' --include='*_test.go' . | sed 's/func //' | sort -u); do \
		pkg=$$(grep -rl "func $$t(" --include='*_test.go' . | head -1 | xargs dirname); \
		echo "fuzz $$t in $$pkg"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

clean:
	rm -rf bin
