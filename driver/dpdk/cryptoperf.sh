#!/bin/sh
# Compares ISM's dpdk driver with dpdk-test-crypto-perf (package dpdk-dev)
# on the same PMDs, algorithms, sizes and burst, on one core, without
# hugepages. The machine is shared and noisy: run it when idle, and compare
# the rounds of one run. Usage: sh driver/dpdk/cryptoperf.sh [rounds]
set -eu
cd "$(dirname "$0")/../.."
rounds=${1:-3}
eal="-l 0,1 --main-lcore 1 --no-huge -m 512 --no-pci --no-shconf --no-telemetry"
go test -c -tags dpdk -o /tmp/ism-dpdk.test ./driver/dpdk/
for r in $(seq "$rounds"); do
	echo "# round $r: dpdk-test-crypto-perf, AES-128-GCM-16, crypto_aesni_gcm"
	dpdk-test-crypto-perf $eal --vdev crypto_aesni_gcm -- --ptest throughput \
		--devtype crypto_aesni_gcm --optype aead --aead-algo aes-gcm --aead-op encrypt \
		--aead-key-sz 16 --aead-iv-sz 12 --aead-aad-sz 8 --digest-sz 16 \
		--buffer-sz 64,512,1420 --burst-sz 32 --total-ops 5000000 2>&1 | grep -E '^ +[0-9]'
	echo "# round $r: dpdk-test-crypto-perf, AES-128-CBC + HMAC-SHA1-96, crypto_aesni_mb"
	dpdk-test-crypto-perf $eal --vdev crypto_aesni_mb -- --ptest throughput \
		--devtype crypto_aesni_mb --optype cipher-then-auth --cipher-algo aes-cbc --cipher-op encrypt \
		--cipher-key-sz 16 --cipher-iv-sz 16 --auth-algo sha1-hmac --auth-op generate \
		--auth-key-sz 20 --digest-sz 12 \
		--buffer-sz 64,512,1424 --burst-sz 32 --total-ops 5000000 2>&1 | grep -E '^ +[0-9]'
	echo "# round $r: ISM"
	taskset -c 0 /tmp/ism-dpdk.test -test.run '^$' -test.bench 'BenchmarkQueuePair|BenchmarkEncap' \
		-test.benchtime 1s -test.cpu 1 | grep -E '^Benchmark'
done
