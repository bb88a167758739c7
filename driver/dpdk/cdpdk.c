//go:build dpdk && cgo

// C wrappers for package dpdk; see cdpdk.h.

#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_bus_vdev.h>
#include <rte_crypto.h>
#include <rte_cryptodev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "cdpdk.h"

#define ISM_IV_OFF (sizeof(struct rte_crypto_op) + sizeof(struct rte_crypto_sym_op))
#define ISM_AAD_OFF (ISM_IV_OFF + 16)
#define ISM_SLOT_OFF (ISM_AAD_OFF + 16)

int ism_eal_init(int argc, char **argv, char *err, int errlen)
{
	int r = rte_eal_init(argc, argv);
	if (r < 0)
		snprintf(err, errlen, "%s", rte_strerror(rte_errno));
	return r;
}

int ism_vdev_init(const char *name)
{
	int r = rte_vdev_init(name, NULL);
	return r == -EEXIST ? 0 : r;
}

uint64_t ism_dev_errs[RTE_CRYPTO_MAX_DEVS];

static void on_event(uint8_t dev, enum rte_cryptodev_event_type ev, void *arg)
{
	(void)arg;
	if (ev == RTE_CRYPTODEV_EVENT_ERROR)
		__atomic_add_fetch(&ism_dev_errs[dev], 1, __ATOMIC_RELAXED);
}

int ism_dev_setup(uint8_t dev, uint16_t nb_qp, uint32_t depth)
{
	struct rte_cryptodev_config conf = {
		.socket_id = rte_cryptodev_socket_id(dev),
		.nb_queue_pairs = nb_qp,
	};
	int r;
	if (conf.socket_id < 0)
		conf.socket_id = 0;
	if ((r = rte_cryptodev_configure(dev, &conf)) < 0)
		return r;
	for (uint16_t i = 0; i < nb_qp; i++) {
		struct rte_cryptodev_qp_conf qc = {.nb_descriptors = depth};
		if ((r = rte_cryptodev_queue_pair_setup(dev, i, &qc, conf.socket_id)) < 0)
			return r;
	}
	rte_cryptodev_callback_unregister(dev, RTE_CRYPTODEV_EVENT_ERROR, on_event, NULL);
	rte_cryptodev_callback_register(dev, RTE_CRYPTODEV_EVENT_ERROR, on_event, NULL);
	return rte_cryptodev_start(dev);
}

void ism_dev_stop(uint8_t dev)
{
	rte_cryptodev_stop(dev);
}

void ism_dev_close(uint8_t dev)
{
	rte_cryptodev_stop(dev);
	rte_cryptodev_close(dev);
}

struct rte_mempool *ism_op_pool(const char *name, uint32_t n)
{
	return rte_crypto_op_pool_create(name, RTE_CRYPTO_OP_TYPE_SYMMETRIC, n, 0,
					 ISM_OP_PRIV, rte_socket_id() == (unsigned)LCORE_ID_ANY ? SOCKET_ID_ANY : (int)rte_socket_id());
}

struct rte_mempool *ism_mbuf_pool(const char *name, uint32_t n, uint16_t room)
{
	return rte_pktmbuf_pool_create(name, n, 0, 0, room, SOCKET_ID_ANY);
}

struct rte_mempool *ism_sess_pool(const char *name, uint32_t n, uint32_t size)
{
	return rte_cryptodev_sym_session_pool_create(name, n, size, 0, 0, SOCKET_ID_ANY);
}

struct objs {
	uint64_t *out;
	uint32_t n, max;
};

static void obj_cb(struct rte_mempool *mp, void *opaque, void *obj, unsigned idx)
{
	struct objs *o = opaque;
	(void)mp;
	(void)idx;
	if (o->n < o->max)
		o->out[o->n] = (uint64_t)(uintptr_t)obj;
	o->n++;
}

uint32_t ism_mempool_objs(struct rte_mempool *mp, uint64_t *out, uint32_t max)
{
	struct objs o = {out, 0, max};
	rte_mempool_obj_iter(mp, obj_cb, &o);
	return o.n;
}

void ism_mempool_free(struct rte_mempool *mp)
{
	rte_mempool_free(mp);
}

int ism_mbuf_alloc(struct rte_mempool *mp, struct ism_mb *out, uint32_t n)
{
	struct rte_mbuf *ms[ISM_BURST];
	if (n > ISM_BURST)
		n = ISM_BURST;
	if (rte_pktmbuf_alloc_bulk(mp, ms, n) != 0)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		out[i].m = (uint64_t)(uintptr_t)ms[i];
		out[i].addr = (uint64_t)(uintptr_t)ms[i]->buf_addr;
		out[i].len = ms[i]->buf_len;
		out[i].off = ms[i]->data_off;
	}
	return n;
}

void ism_mbuf_free(uint64_t *ms, uint32_t n)
{
	rte_pktmbuf_free_bulk((struct rte_mbuf **)ms, n);
}

void *ism_sess_create(uint8_t dev, struct rte_mempool *mp, const struct ism_sess_conf *c, int *err)
{
	struct rte_crypto_sym_xform x[2];
	struct rte_crypto_sym_xform *first = NULL, *cipher = NULL, *auth = NULL;
	void *s;
	memset(x, 0, sizeof(x));
	if (c->aead_algo) {
		x[0].type = RTE_CRYPTO_SYM_XFORM_AEAD;
		x[0].aead.op = c->encrypt ? RTE_CRYPTO_AEAD_OP_ENCRYPT : RTE_CRYPTO_AEAD_OP_DECRYPT;
		x[0].aead.algo = c->aead_algo;
		x[0].aead.key.data = c->cipher_key;
		x[0].aead.key.length = c->cipher_key_len;
		x[0].aead.iv.offset = ISM_IV_OFF;
		x[0].aead.iv.length = c->iv_len;
		x[0].aead.digest_length = c->digest_len;
		x[0].aead.aad_length = c->aad_len;
		first = &x[0];
	} else {
		int n = 0;
		if (c->cipher_algo) {
			cipher = &x[n++];
			cipher->type = RTE_CRYPTO_SYM_XFORM_CIPHER;
			cipher->cipher.op = c->encrypt ? RTE_CRYPTO_CIPHER_OP_ENCRYPT : RTE_CRYPTO_CIPHER_OP_DECRYPT;
			cipher->cipher.algo = c->cipher_algo;
			cipher->cipher.key.data = c->cipher_key;
			cipher->cipher.key.length = c->cipher_key_len;
			cipher->cipher.iv.offset = ISM_IV_OFF;
			cipher->cipher.iv.length = c->iv_len;
		}
		if (c->auth_algo) {
			auth = &x[n++];
			auth->type = RTE_CRYPTO_SYM_XFORM_AUTH;
			auth->auth.op = c->encrypt ? RTE_CRYPTO_AUTH_OP_GENERATE : RTE_CRYPTO_AUTH_OP_VERIFY;
			auth->auth.algo = c->auth_algo;
			auth->auth.key.data = c->auth_key;
			auth->auth.key.length = c->auth_key_len;
			auth->auth.digest_length = c->digest_len;
		}
		// Outbound encrypts then authenticates; inbound verifies then
		// decrypts (RFC 4303 §3.4.4).
		if (cipher && auth) {
			if (c->encrypt) {
				cipher->next = auth;
				first = cipher;
			} else {
				auth->next = cipher;
				first = auth;
			}
		} else {
			first = cipher ? cipher : auth;
		}
	}
	s = rte_cryptodev_sym_session_create(dev, first, mp);
	if (s == NULL)
		*err = rte_errno;
	explicit_bzero((void *)c->cipher_key, c->cipher_key_len);
	explicit_bzero((void *)c->auth_key, c->auth_key_len);
	explicit_bzero(x, sizeof(x));
	return s;
}

int ism_sess_free(uint8_t dev, void *sess)
{
	return rte_cryptodev_sym_session_free(dev, sess);
}

int ism_check_aead(uint8_t dev, int algo, uint16_t key, uint16_t digest, uint16_t aad, uint16_t iv)
{
	struct rte_cryptodev_sym_capability_idx idx = {.type = RTE_CRYPTO_SYM_XFORM_AEAD};
	const struct rte_cryptodev_symmetric_capability *cap;
	idx.algo.aead = algo;
	cap = rte_cryptodev_sym_capability_get(dev, &idx);
	return cap != NULL && rte_cryptodev_sym_capability_check_aead(cap, key, digest, aad, iv) == 0;
}

int ism_check_cipher(uint8_t dev, int algo, uint16_t key, uint16_t iv)
{
	struct rte_cryptodev_sym_capability_idx idx = {.type = RTE_CRYPTO_SYM_XFORM_CIPHER};
	const struct rte_cryptodev_symmetric_capability *cap;
	idx.algo.cipher = algo;
	cap = rte_cryptodev_sym_capability_get(dev, &idx);
	return cap != NULL && rte_cryptodev_sym_capability_check_cipher(cap, key, iv) == 0;
}

int ism_check_auth(uint8_t dev, int algo, uint16_t key, uint16_t digest)
{
	struct rte_cryptodev_sym_capability_idx idx = {.type = RTE_CRYPTO_SYM_XFORM_AUTH};
	const struct rte_cryptodev_symmetric_capability *cap;
	idx.algo.auth = algo;
	cap = rte_cryptodev_sym_capability_get(dev, &idx);
	return cap != NULL && rte_cryptodev_sym_capability_check_auth(cap, key, digest, 0) == 0;
}

// fill turns a descriptor into a crypto op.
static inline void fill(struct rte_crypto_op *op, const struct ism_desc *d)
{
	struct rte_mbuf *m = (struct rte_mbuf *)(uintptr_t)d->m;
	struct rte_crypto_sym_op *s = op->sym;
	uint8_t *iv = rte_crypto_op_ctod_offset(op, uint8_t *, ISM_IV_OFF);

	m->data_off = d->data_off;
	m->data_len = d->data_len;
	m->pkt_len = d->data_len;
	m->nb_segs = 1;
	m->next = NULL;
	rte_crypto_op_attach_sym_session(op, (void *)(uintptr_t)d->sess);
	s->m_src = m;
	s->m_dst = NULL;
	memcpy(iv, d->iv, 16);
	*rte_crypto_op_ctod_offset(op, uint32_t *, ISM_SLOT_OFF) = d->slot;
	if (d->kind == ISM_KIND_AEAD) {
		uint8_t *aad = rte_crypto_op_ctod_offset(op, uint8_t *, ISM_AAD_OFF);
		memcpy(aad, d->aad, 16);
		s->aead.data.offset = d->c_off;
		s->aead.data.length = d->c_len;
		s->aead.digest.data = rte_pktmbuf_mtod_offset(m, uint8_t *, d->d_off);
		s->aead.digest.phys_addr = rte_pktmbuf_iova_offset(m, d->d_off);
		s->aead.aad.data = aad;
		s->aead.aad.phys_addr = rte_crypto_op_ctophys_offset(op, ISM_AAD_OFF);
		return;
	}
	s->cipher.data.offset = d->c_off;
	s->cipher.data.length = d->c_len;
	s->auth.data.offset = d->a_off;
	s->auth.data.length = d->a_len;
	s->auth.digest.data = rte_pktmbuf_mtod_offset(m, uint8_t *, d->d_off);
	s->auth.digest.phys_addr = rte_pktmbuf_iova_offset(m, d->d_off);
}

int ism_enqueue(struct ism_qp *q, const struct ism_desc *d, uint32_t n)
{
	struct rte_crypto_op *ops[ISM_BURST];
	uint32_t done = 0;
	if (n > ISM_BURST)
		n = ISM_BURST;
	if (n == 0 || rte_crypto_op_bulk_alloc(q->op_pool, RTE_CRYPTO_OP_TYPE_SYMMETRIC, ops, n) == 0)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		fill(ops[i], &d[i]);
	// Enqueue runs of ops bound for the same device; stop at the first
	// device that takes less than its run.
	while (done < n) {
		uint8_t dev = d[done].dev;
		uint32_t end = done + 1;
		uint16_t k;
		while (end < n && d[end].dev == dev)
			end++;
		if (q->dead & (1u << dev))
			break;
		rte_errno = 0;
		k = rte_cryptodev_enqueue_burst(q->devs[dev], q->qp, ops + done, end - done);
		if (k == 0 && rte_errno == ENOTSUP)
			q->dead |= 1u << dev;
		done += k;
		if (done < end)
			break;
	}
	if (done < n)
		rte_mempool_put_bulk(q->op_pool, (void **)(ops + done), n - done);
	return done;
}

int ism_dequeue(struct ism_qp *q, struct ism_done *out, uint32_t max)
{
	struct rte_crypto_op *ops[ISM_BURST];
	uint32_t n = 0;
	if (max > ISM_BURST)
		max = ISM_BURST;
	for (uint16_t i = 0; i < q->ndev && n < max; i++) {
		uint16_t dev = (q->next + i) % q->ndev;
		uint16_t k;
		if (q->dead & (1u << dev))
			continue;
		rte_errno = 0;
		k = rte_cryptodev_dequeue_burst(q->devs[dev], q->qp, ops + n, max - n);
		if (k == 0 && rte_errno == ENOTSUP)
			q->dead |= 1u << dev;
		for (uint16_t j = 0; j < k; j++) {
			struct rte_crypto_op *op = ops[n + j];
			out[n + j].slot = *rte_crypto_op_ctod_offset(op, uint32_t *, ISM_SLOT_OFF);
			out[n + j].status = op->status;
			out[n + j].dev = dev;
		}
		n += k;
	}
	if (q->ndev > 0)
		q->next = (q->next + 1) % q->ndev;
	if (n > 0)
		rte_mempool_put_bulk(q->op_pool, (void **)ops, n);
	return n;
}
