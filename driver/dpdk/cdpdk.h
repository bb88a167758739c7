// C side of package dpdk: small wrappers around the static-inline fast path
// of DPDK 22.11 (cryptodev, mbuf, mempool), so that Go makes one cgo call per
// burst. Built only with the dpdk build tag, see cdpdk.c.

#ifndef ISM_CDPDK_H
#define ISM_CDPDK_H

#include <stdint.h>

struct rte_mempool;
struct rte_mbuf;

// Most devices one queue pair spans, and most ops one C call moves.
#define ISM_MAX_DEVS 16
#define ISM_BURST 256

// Op kinds.
#define ISM_KIND_AEAD 1
#define ISM_KIND_SYM 2 // cipher, auth or a chain of both

// Bytes after the rte_crypto_sym_op in each op: IV, AAD and the slot.
#define ISM_OP_PRIV 48

// ism_desc is one op as Go describes it; offsets are relative to the packet
// start, which is data_off bytes into the mbuf's buffer.
struct ism_desc {
	uint64_t m;    // struct rte_mbuf *
	uint64_t sess; // device session
	uint32_t slot; // Go's index of the op, given back on completion
	uint16_t data_off;
	uint16_t data_len;
	uint32_t c_off, c_len;
	uint32_t a_off, a_len;
	uint32_t d_off;
	uint8_t dev; // index into ism_qp.devs
	uint8_t kind;
	uint8_t iv_len;
	uint8_t aad_len;
	uint8_t iv[16];
	uint8_t aad[16];
};

// ism_done is one completion.
struct ism_done {
	uint32_t slot;
	uint8_t status; // enum rte_crypto_op_status
	uint8_t dev;
	uint16_t pad;
};

// ism_qp is one ISM queue pair: queue pair qp on each of its devices.
struct ism_qp {
	struct rte_mempool *op_pool;
	uint16_t qp;
	uint16_t ndev;
	uint16_t next; // device to dequeue from first
	uint8_t devs[ISM_MAX_DEVS];
	// Devices found not taking ops (a stopped device's stub burst
	// functions set rte_errno to ENOTSUP), by index in devs; they are not
	// called again.
	uint32_t dead;
};

// ism_mb describes a fresh mbuf to Go.
struct ism_mb {
	uint64_t m;
	uint64_t addr; // buf_addr
	uint32_t len;  // buf_len
	uint32_t off;  // data_off
};

int ism_eal_init(int argc, char **argv, char *err, int errlen);
int ism_vdev_init(const char *name);

int ism_dev_setup(uint8_t dev, uint16_t nb_qp, uint32_t depth);
void ism_dev_stop(uint8_t dev);
void ism_dev_close(uint8_t dev);

// Device error events seen, by device id; written by the interrupt thread.
extern uint64_t ism_dev_errs[];

struct rte_mempool *ism_op_pool(const char *name, uint32_t n);
struct rte_mempool *ism_mbuf_pool(const char *name, uint32_t n, uint16_t room);
struct rte_mempool *ism_sess_pool(const char *name, uint32_t n, uint32_t size);
// ism_mempool_objs writes the addresses of up to max objects of the pool and
// returns how many it has.
uint32_t ism_mempool_objs(struct rte_mempool *mp, uint64_t *out, uint32_t max);
void ism_mempool_free(struct rte_mempool *mp);

int ism_mbuf_alloc(struct rte_mempool *mp, struct ism_mb *out, uint32_t n);
void ism_mbuf_free(uint64_t *ms, uint32_t n);

// Sessions. The keys are C memory, wiped before ism_sess_create returns.
struct ism_sess_conf {
	int aead_algo;   // enum rte_crypto_aead_algorithm, 0: none
	int cipher_algo; // enum rte_crypto_cipher_algorithm, 0: none
	int auth_algo;   // enum rte_crypto_auth_algorithm, 0: none
	int encrypt;     // 1 outbound, 0 inbound
	uint16_t iv_len, aad_len, digest_len, cipher_key_len, auth_key_len;
	const uint8_t *cipher_key;
	const uint8_t *auth_key;
};
void *ism_sess_create(uint8_t dev, struct rte_mempool *mp, const struct ism_sess_conf *c, int *err);
int ism_sess_free(uint8_t dev, void *sess);

int ism_check_aead(uint8_t dev, int algo, uint16_t key, uint16_t digest, uint16_t aad, uint16_t iv);
int ism_check_cipher(uint8_t dev, int algo, uint16_t key, uint16_t iv);
int ism_check_auth(uint8_t dev, int algo, uint16_t key, uint16_t digest);

int ism_enqueue(struct ism_qp *q, const struct ism_desc *d, uint32_t n);
int ism_dequeue(struct ism_qp *q, struct ism_done *out, uint32_t max);

#endif
