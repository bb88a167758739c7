#!/bin/bash
# Runs this package's tests (or, with ISM_VM_PKG, another package's) in a KVM
# guest booted with Debian's stock kernel, which has what the CI machine's
# kernel lacks: AF_ALG (algif_aead, algif_skcipher, algif_hash), XFRM ESP and
# AH (esp4, ah4, esp6, ah6), XFRM interfaces (xfrm_interface) and the crypto
# templates (gcm, chacha20poly1305, authenc, des). The guest is an initramfs
# with busybox, iproute2, ping, python3, the tun and veth modules and the
# test binary.
#
# Needs: root, /dev/kvm, and the Debian packages qemu-system-x86 and
# busybox-static; the kernel package is fetched with "apt-get download".
# With /dev/kvm the guest uses KVM; where nested KVM does not boot (as on the
# CI machine, where the guest hangs in early boot), set ISM_VM_TCG=1 to
# emulate: the whole run then takes about a minute.
# Usage (from the repository root):
#   bash driver/kernel/testdata/vm/run.sh [go test flags, e.g. -test.run TestAgainstFallback]
# Package ism's XFRM protocol-offload datapath tests (gateway A on XFRM,
# gateway B on the software engine):
#   ISM_VM_TCG=1 ISM_VM_PKG=./ism bash driver/kernel/testdata/vm/run.sh -test.run TestXFRM
set -euo pipefail

repo=$(cd "$(dirname "$0")/../../../.." && pwd)
pkgdir=${ISM_VM_PKG:-./driver/kernel}
work=$(mktemp -d /tmp/ism-kernel-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
cache=${ISM_VM_CACHE:-/var/cache/ism-kernel-vm}
mkdir -p "$cache"

pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
deb=$(ls "$cache/$pkg"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
	(cd "$cache" && apt-get download "$pkg" >/dev/null)
	deb=$(ls "$cache/$pkg"_*.deb | head -1)
fi
dpkg-deb -x "$deb" "$work/k"
kver=$(ls "$work/k/lib/modules")

root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,etc,work,lib/modules,var}
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/busybox"
for a in sh mount mkdir cat modprobe depmod insmod poweroff sleep; do ln -s busybox "$root/bin/$a"; done
ln -s ../bin/busybox "$root/sbin/modprobe"
# Only the modules the guest loads (see init), with the files depmod reads.
mkdir -p "$root/lib/modules/$kver"
cp "$work/k/lib/modules/$kver"/modules.{builtin,builtin.modinfo,order} "$root/lib/modules/$kver/"
(cd "$work/k/lib/modules/$kver" && tar cf - kernel/crypto kernel/arch/x86/crypto kernel/lib/crypto \
	kernel/net/ipv4 kernel/net/ipv6 kernel/net/xfrm kernel/drivers/net/veth.ko kernel/drivers/net/tun.ko) | (cd "$root/lib/modules/$kver" && tar xf -)
# Binaries from the host with their shared libraries.
copy() {
	for f in "$@"; do
		mkdir -p "$root$(dirname "$f")"
		cp -L "$f" "$root$f"
		ldd "$f" 2>/dev/null | awk '/=>/{print $3} /^[ \t]*\/lib/{print $1}' | while read -r l; do
			[ -n "$l" ] && mkdir -p "$root$(dirname "$l")" && cp -Ln "$l" "$root$l"
		done
	done
}
copy /usr/bin/ip /usr/bin/ping /usr/bin/python3
mkdir -p "$root/usr/sbin" && ln -sf ../bin/ip "$root/usr/sbin/ip"
py=$(readlink -f /usr/bin/python3); pyver=$(basename "$py")
mkdir -p "$root/usr/lib/$pyver"
(cd "/usr/lib/$pyver" && tar cf - --exclude=test --exclude=__pycache__ --exclude=site-packages --exclude=dist-packages .) | (cd "$root/usr/lib/$pyver" && tar xf -)
ln -sf /proc/mounts "$root/etc/mtab"

(cd "$repo" && CGO_ENABLED=0 go test -c -o "$root/work/pkg.test" "$pkgdir")
echo "$*" > "$root/work/args"

cat > "$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run; mkdir -p /run/netns
echo /sbin/modprobe > /proc/sys/kernel/modprobe
depmod
for m in af_alg algif_aead algif_skcipher algif_hash crypto_null authenc authencesn \
	des_generic des3_ede-x86_64 ctr gcm ghash-generic seqiv echainiv sha512_generic \
	chacha_generic poly1305_generic chacha20poly1305 aesni-intel xfrm_algo xfrm_user \
	esp4 ah4 esp6 ah6 tunnel4 xfrm4_tunnel tunnel6 xfrm6_tunnel xfrm_interface veth tun; do
	modprobe "$m" || echo "modprobe $m failed"
done
busybox ip link set lo up
cd /work && ./pkg.test -test.v -test.count=1 $(cat /work/args)
echo "ISM-VM-EXIT=$?"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"

accel="-enable-kvm -cpu qemu64,+ssse3,+sse4.1,+sse4.2,+aes,+pclmulqdq,+popcnt"
[ -w /dev/kvm ] && [ -z "${ISM_VM_TCG:-}" ] || accel="-accel tcg -cpu max"
timeout 900 qemu-system-x86_64 $accel -m 2048 -smp 2 -nographic -no-reboot \
	-kernel "$work/k/boot/vmlinuz-$kver" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" | tee "$work/log"
grep -q '^ISM-VM-EXIT=0' "$work/log"
