package kernel

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

// TestStructLayout checks the Go mirrors against struct sizes and offsets
// of <linux/xfrm.h> (linux-libc-dev 6.1, measured with gcc's sizeof and
// offsetof on amd64; the same on every 64-bit Linux ABI).
func TestStructLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the expected values are for 64-bit ABIs")
	}
	var (
		sa   xfrmUsersaInfo
		enc  xfrmEncapTmpl
		tmpl xfrmUserTmpl
		pol  xfrmUserpolicyInfo
	)
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(xfrm_selector)", unsafe.Sizeof(xfrmSelector{}), 56},
		{"sizeof(xfrm_id)", unsafe.Sizeof(xfrmID{}), 24},
		{"sizeof(xfrm_usersa_info)", unsafe.Sizeof(sa), 224},
		{"offsetof(xfrm_usersa_info, id)", unsafe.Offsetof(sa.ID), 56},
		{"offsetof(xfrm_usersa_info, saddr)", unsafe.Offsetof(sa.Saddr), 80},
		{"offsetof(xfrm_usersa_info, lft)", unsafe.Offsetof(sa.Lft), 96},
		{"offsetof(xfrm_usersa_info, curlft)", unsafe.Offsetof(sa.Curlft), 160},
		{"offsetof(xfrm_usersa_info, stats)", unsafe.Offsetof(sa.Stats), 192},
		{"offsetof(xfrm_usersa_info, seq)", unsafe.Offsetof(sa.Seq), 204},
		{"offsetof(xfrm_usersa_info, reqid)", unsafe.Offsetof(sa.Reqid), 208},
		{"offsetof(xfrm_usersa_info, family)", unsafe.Offsetof(sa.Family), 212},
		{"offsetof(xfrm_usersa_info, mode)", unsafe.Offsetof(sa.Mode), 214},
		{"offsetof(xfrm_usersa_info, replay_window)", unsafe.Offsetof(sa.ReplayWindow), 215},
		{"offsetof(xfrm_usersa_info, flags)", unsafe.Offsetof(sa.Flags), 216},
		{"sizeof(xfrm_usersa_id)", unsafe.Sizeof(xfrmUsersaID{}), 24},
		{"sizeof(xfrm_userspi_info)", unsafe.Sizeof(xfrmUserspiInfo{}), 232},
		{"sizeof(xfrm_encap_tmpl)", unsafe.Sizeof(enc), 24},
		{"offsetof(xfrm_encap_tmpl, encap_oa)", unsafe.Offsetof(enc.Oa), 8},
		{"sizeof(xfrm_user_tmpl)", unsafe.Sizeof(tmpl), 64},
		{"offsetof(xfrm_user_tmpl, saddr)", unsafe.Offsetof(tmpl.Saddr), 28},
		{"offsetof(xfrm_user_tmpl, reqid)", unsafe.Offsetof(tmpl.Reqid), 44},
		{"offsetof(xfrm_user_tmpl, aalgos)", unsafe.Offsetof(tmpl.Aalgos), 52},
		{"sizeof(xfrm_userpolicy_info)", unsafe.Sizeof(pol), 168},
		{"offsetof(xfrm_userpolicy_info, priority)", unsafe.Offsetof(pol.Priority), 152},
		{"offsetof(xfrm_userpolicy_info, dir)", unsafe.Offsetof(pol.Dir), 160},
		{"sizeof(xfrm_userpolicy_id)", unsafe.Sizeof(xfrmUserpolicyID{}), 64},
		{"sizeof(xfrm_user_offload)", unsafe.Sizeof(xfrmUserOffload{}), 8},
		{"sizeof(xfrm_replay_state_esn)", unsafe.Sizeof(xfrmReplayStateESN{}), 24},
		{"sizeof(xfrm_lifetime_cur)", unsafe.Sizeof(xfrmLifetimeCur{}), 32},
		{"sizeof(xfrm_mark)", unsafe.Sizeof(xfrmMark{}), 8},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestAlgoAttr checks the xfrm_algo_auth layout: a 64-byte NUL-padded name,
// the key length and truncation in bits, then the key.
func TestAlgoAttr(t *testing.T) {
	m := newMsgBuilder()
	m.start(msgNewSA, flagsAck, 7, 9)
	key := []byte{1, 2, 3, 4, 5}
	m.algo(attrAlgAuthTrunc, "hmac(sha1)", key, 96)
	msg, ok := m.finish()
	if !ok {
		t.Fatal("overflow")
	}
	if got := binary.NativeEndian.Uint32(msg); int(got) != len(msg) || len(msg)%4 != 0 {
		t.Fatalf("length field %d, message %d bytes", got, len(msg))
	}
	a := msg[nlmsgHeaderLen:]
	if l, typ := binary.NativeEndian.Uint16(a), binary.NativeEndian.Uint16(a[2:]); l != 4+72+5 || typ != attrAlgAuthTrunc {
		t.Fatalf("attribute header len %d type %d", l, typ)
	}
	v := a[4:]
	if !bytes.Equal(v[:11], []byte("hmac(sha1)\x00")) || !bytes.Equal(v[11:64], make([]byte, 53)) {
		t.Errorf("name field % x", v[:64])
	}
	if kb, tb := binary.NativeEndian.Uint32(v[64:]), binary.NativeEndian.Uint32(v[68:]); kb != 40 || tb != 96 {
		t.Errorf("key bits %d, trunc bits %d", kb, tb)
	}
	if !bytes.Equal(v[72:77], key) {
		t.Errorf("key % x", v[72:77])
	}
	m.wipe()
	if !bytes.Equal(msg[:cap(msg)], make([]byte, cap(msg))) {
		t.Error("wipe left bytes behind")
	}
}

// TestBuilderNeverGrows checks that an oversized request is refused rather
// than copied into a larger buffer that could not be wiped.
func TestBuilderNeverGrows(t *testing.T) {
	m := newMsgBuilder()
	base := &m.b[:1][0]
	m.start(msgNewSA, flagsAck, 1, 1)
	big := make([]byte, 4000)
	m.attr(attrAlgCrypt, big)
	m.attr(attrAlgCrypt, big)
	m.attr(attrAlgCrypt, big)
	if _, ok := m.finish(); ok {
		t.Fatal("a request beyond maxMessage was accepted")
	}
	if &m.b[:1][0] != base || cap(m.b) != maxMessage {
		t.Fatal("the buffer was reallocated")
	}
}

// FuzzXFRMReply feeds arbitrary datagrams to the reply parser and the SA
// answer decoder: they must never panic or read out of bounds, and a reply
// they accept must carry the request's sequence number.
func FuzzXFRMReply(f *testing.F) {
	var sa xfrmUsersaInfo
	sa.Curlft.Bytes = 1000
	good := newMsgBuilder()
	good.start(msgNewSA, 0, 5, 0)
	good.body(structBytes(&sa))
	var lu [8]byte
	binary.NativeEndian.PutUint64(lu[:], 1700000000)
	good.attr(attrLastUsed, lu[:])
	msg, _ := good.finish()
	f.Add(append([]byte(nil), msg...))
	e := newMsgBuilder()
	e.start(nlmsgError, nlmFCapped|nlmFAckTLVs, 5, 0)
	var errno [4]byte
	binary.NativeEndian.PutUint32(errno[:], uint32(0x100000000-int(93)))
	e.body(errno[:])
	e.body(make([]byte, nlmsgHeaderLen))
	e.attr(nlmsgerrMsg, []byte("Requested type not found\x00"))
	emsg, _ := e.finish()
	f.Add(append([]byte(nil), emsg...))
	f.Fuzz(func(t *testing.T, b []byte) {
		x := &XFRM{}
		_, _ = x.parse("fuzz", b, 5, false, func(typ uint16, data []byte) error {
			if u, ok := parseUsage(data); ok && u.Bytes != binary.NativeEndian.Uint64(data[160:]) {
				t.Fatalf("bytes %d not read from the curlft field", u.Bytes)
			}
			return nil
		})
		_, _ = parseUsage(b)
	})
}

// TestConfigRedacted checks that printing an SA's configuration never
// prints its keys.
func TestConfigRedacted(t *testing.T) {
	c := &SAConfig{CipherKey: []byte("0123456789abcdef"), AuthKey: []byte("fedcba9876543210fedc")}
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", *c), fmt.Sprintf("%#v", *c), fmt.Sprintf("%x", c.CipherKey)} {
		if strings.Contains(s, "0123456789") || strings.Contains(s, "fedcba") || strings.Contains(s, hex.EncodeToString(c.CipherKey)) {
			t.Fatalf("key printed: %s", s)
		}
	}
}
