/*
 * ekvfuse: a small Node-API addon over the libfuse3 low-level API.
 *
 * libfuse's multi-threaded session loop runs on its own threads. Every request
 * the JS side must answer is handed to the JS main thread through one
 * napi_threadsafe_function and returns to libfuse at once, so any number of
 * requests can be in flight; JS answers each one later, asynchronously, with
 * the reply* functions below, naming the request by a numeric id.
 *
 * Answered here, without a trip to JS: open (the first one with ENOSYS, after
 * which the kernel opens files itself with keep_cache; reported to JS),
 * statfs, xattrs (none; getxattr with ENOSYS, once), release / releasedir (releasedir is reported to JS),
 * the readdir past a listing's end (after the page-cache pushes parked for
 * that listing's files, see js_store), the first readdirplus of a directory whose listing JS
 * prepared ahead (js_prepare_dir), a lookup of an entry JS expected (js_expect), and EROFS for every write-side
 * operation. forget/forget_multi are reported to JS (the inode
 * table lives there) and need no reply. An INTERRUPT of a request JS holds is
 * reported to JS, which has the addon answer EINTR when the caller is leaving
 * (js_interrupt).
 *
 * Besides FUSE: sha256 hashes big files for CHECKSUMS in libuv's thread pool (see its
 * comment), trimMalloc and reexec.
 *
 * Threads: fuse worker threads only allocate a request record and queue it (and
 * move parked pushes to the push queue, under its mutex); the request-id table,
 * replies and session teardown belong to the JS thread; page-cache pushes and the
 * answers queued behind them are written by a push thread of their own.
 */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE

#include <fuse_lowlevel.h>
#include <node_api.h>

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum {
  OP_LOOKUP = 1,
  OP_GETATTR = 2,
  OP_OPENDIR = 3,
  OP_READDIR = 4,
  OP_READDIRPLUS = 5,
  OP_RELEASEDIR = 6,
  OP_OPEN = 7,
  OP_READ = 8,
  OP_FORGET = 9,
  OP_EXIT = 10,
  OP_PREPARED = 11, /* a notification: the kernel took a prepared listing (ino: the directory) */
  OP_INTERRUPT = 12, /* a notification: the kernel interrupted a request JS holds (a: its id) */
  OP_EXPECTED = 13,  /* a notification: a lookup was answered from an entry JS expected (ino: the entry's; a: the bytes held for its READ) */
};

/* Open reply flags (replyOpen's last argument). */
#define OPEN_KEEP_CACHE 1
#define OPEN_CACHE_DIR 2

/* d_ino for readdir entries whose inode is not known (never 0: glibc skips those). */
#define UNKNOWN_INO 0xffffffffu

typedef struct ekv_req {
  int op;
  fuse_req_t req; /* NULL for notifications (forget, releasedir, exit) */
  uint64_t ino;
  uint64_t a;
  int64_t b;
  uint64_t fh;
  size_t nforgets;
  struct fuse_forget_data *forgets;
  char name[]; /* lookup name, NUL-terminated */
} ekv_req;

typedef struct {
  fuse_req_t req;
  uint32_t gen;
} ekv_slot;

/* Listing ends remembered (see ekv_mount.dir_ends). */
#define DIR_ENDS 4096
/* Directories with parked pushes at once, and their bytes together (beyond: dropped). */
#define PARK_SLOTS 64
/* Pushes queued or waiting to be tried again, counted by inode hash (see store_enqueue). */
#define PUSH_COUNT_SLOTS 4096
#define PARK_MAX (16u << 20)
/* Listings prepared ahead at once (see js_prepare_dir), and their names and attributes together. */
#define PREP_SLOTS 64
#define PREP_MAX_BYTES (32u << 20)
/* Lookups expected at once (see js_expect): a ring, the oldest dropped when full; their chains by
 * (parent, name) hash; and the bytes they hold together (beyond: refused). */
#define EXPECT_SLOTS 1024
#define EXPECT_BUCKETS 2048
#define EXPECT_MAX_BYTES (16u << 20)

/* An entry JS expects the kernel to look up next (see js_expect). parent 0: a free slot. */
typedef struct ekv_expect {
  uint64_t parent, ino;
  double size;
  int kind;
  uint32_t hash;
  uint32_t next; /* the chain's next slot + 1; 0 ends it */
  char *name;
  struct ekv_store *push; /* the file's bytes, held for its READ once the lookup is answered; or NULL */
} ekv_expect;

typedef struct {
  struct fuse_session *se;
  napi_threadsafe_function tsfn;
  pthread_t thread;
  int thread_started;
  char *mountpoint;
  /* attribute template */
  uid_t uid;
  gid_t gid;
  struct timespec time;
  double timeout;
  int readdirplus; /* 0 off, 1 always, 2 auto */
  unsigned max_read; /* from the max_read= mount option; init must agree */
  int no_open;      /* answer open with ENOSYS: the kernel then opens files itself (keep_cache), no OPEN/RELEASE */
  int no_opendir;   /* the same for directories: no OPENDIR/RELEASEDIR, listings cached (cache_readdir) */
  /* Where listings end, by directory inode (direct-mapped; a collision only costs a round trip):
   * a readdir at or past the end of an immutable listing is answered here, empty. */
  pthread_mutex_t ends_mu;
  struct {
    uint64_t ino, end;
  } dir_ends[DIR_ENDS];
  /* request ids: JS thread only */
  ekv_slot *slots;
  uint32_t nslots, capslots;
  uint32_t *freelist;
  uint32_t nfree;
  uint32_t pending;
  int loop_done;
  /* page-cache pushes (store): queued by JS, written by their own thread */
  pthread_mutex_t store_mu;
  pthread_cond_t store_cv;
  struct ekv_store *store_head, *store_tail;
  struct ekv_store *retry_head; /* refused pushes to try again, by due time */
  uint64_t store_retried;       /* pushes tried again (see store_retry_later) */
  uint64_t store_read_answers;  /* READs answered from a push not written yet (store_answer_read) */
  uint32_t holds_since_wake;    /* holds made since the push thread was last woken for them (store_enqueue) */
  uint32_t pushes_of[PUSH_COUNT_SLOTS]; /* queued or retrying pushes by ino % slots */
  size_t store_bytes;
  int store_started, store_stop;
  int store_busy; /* the push thread is writing one it has taken off the queue */
  pthread_t store_thread;
  /* Pushes parked until the kernel asks for more of a listing (see js_store), by
   * directory inode (direct-mapped: a collision drops the older directory's pushes). */
  struct {
    uint64_t dir;
    struct ekv_store *head, *tail;
    size_t bytes;
  } parked[PARK_SLOTS];
  size_t parked_bytes;
  /* Listings JS prepared before the kernel asked (see js_prepare_dir), by directory inode
   * (direct-mapped: a collision drops the older one, its lookups forgotten). */
  pthread_mutex_t prep_mu;
  struct ekv_prep {
    uint64_t dir; /* 0: empty */
    uint32_t n;
    uint32_t base; /* the listing offset of entry 0 (JS answered the ones before it) */
    uint32_t next; /* entries before this one went to the kernel */
    size_t at;     /* where entry `next`'s name starts in names */
    size_t bytes;  /* names and meta */
    char *names;   /* n NUL-terminated names, back to back */
    double *meta;  /* 3 per name, as replyDir's: inode, kind, size */
  } prep[PREP_SLOTS];
  size_t prep_bytes;
  uint64_t prep_answered, prep_dropped; /* under prep_mu */
  /* Lookups answered ahead of the kernel's asking (see js_expect): the entries, the chain heads
   * by hash (slot + 1; 0: empty), the ring's next slot, and the bytes held. */
  pthread_mutex_t expect_mu;
  ekv_expect expect[EXPECT_SLOTS];
  uint32_t expect_bucket[EXPECT_BUCKETS];
  uint32_t expect_ring;
  size_t expect_bytes;
  uint64_t expect_answered, expect_dropped; /* under expect_mu */
} ekv_mount;

typedef struct ekv_prep ekv_prep;

typedef struct ekv_store {
  struct ekv_store *next;
  fuse_req_t req; /* non-NULL: a READ answer sent after the pushes queued before it */
  uint64_t ino;
  off_t off;
  size_t len;
  int tries;       /* pushes refused for an inode the kernel has not instantiated yet (store_main) */
  uint64_t due_ns; /* when a refused push is tried again (CLOCK_MONOTONIC) */
  char data[];
} ekv_store;

/* A push the kernel refuses with ENOENT is tried again this many times, 1, 2, 4, ... ms apart. */
#define STORE_RETRIES 6

/* How long a push held for the READ after a lookup waits before it is tried (store_enqueue). */
#define STORE_HOLD_NS 1000000u

/* Holds made before the push thread is woken for them (store_enqueue). */
#define HOLD_WAKE_EVERY 32

/* Bytes of pushes queued at most; beyond it a push is dropped (the file is then read as usual). */
#define STORE_QUEUE_MAX (32u << 20)

#define ID_BITS 24
#define ID_MASK ((1u << ID_BITS) - 1)
#define GEN_MASK ((1u << 28) - 1)

/* ---------------------------------------------------------------- ids */

static int slot_alloc(ekv_mount *m, fuse_req_t req, double *id) {
  uint32_t i;
  if (m->nfree > 0) {
    i = m->freelist[--m->nfree];
  } else {
    if (m->nslots == m->capslots) {
      uint32_t cap = m->capslots ? m->capslots * 2 : 1024;
      if (cap > ID_MASK + 1u) return -1;
      ekv_slot *s = realloc(m->slots, cap * sizeof *s);
      uint32_t *f = realloc(m->freelist, cap * sizeof *f);
      if (s) m->slots = s;
      if (f) m->freelist = f;
      if (!s || !f) return -1;
      m->capslots = cap;
    }
    i = m->nslots++;
    m->slots[i].gen = 0;
  }
  m->slots[i].req = req;
  m->slots[i].gen = (m->slots[i].gen + 1) & GEN_MASK;
  m->pending++;
  *id = (double)m->slots[i].gen * (double)(1u << ID_BITS) + (double)i;
  return 0;
}

/* The request for an id, removed from the table; NULL if unknown or already answered. */
static fuse_req_t slot_take(ekv_mount *m, double id) {
  if (!(id >= 0) || id > 9007199254740991.0) return NULL;
  uint64_t v = (uint64_t)id;
  uint32_t i = (uint32_t)(v & ID_MASK);
  uint32_t gen = (uint32_t)(v >> ID_BITS);
  if (i >= m->nslots) return NULL;
  ekv_slot *s = &m->slots[i];
  if (!s->req || s->gen != gen) return NULL;
  fuse_req_t r = s->req;
  s->req = NULL;
  m->freelist[m->nfree++] = i;
  m->pending--;
  return r;
}

/* The request for an id, left in the table; NULL if unknown or already answered. */
static fuse_req_t slot_peek(ekv_mount *m, double id) {
  if (!(id >= 0) || id > 9007199254740991.0) return NULL;
  uint64_t v = (uint64_t)id;
  uint32_t i = (uint32_t)(v & ID_MASK);
  uint32_t gen = (uint32_t)(v >> ID_BITS);
  if (i >= m->nslots || !m->slots[i].req || m->slots[i].gen != gen) return NULL;
  return m->slots[i].req;
}

/* ---------------------------------------------------------------- fuse side */

/* Queue a request or notification for the JS thread. */
static void post_to(ekv_mount *m, ekv_req *r) {
  if (napi_call_threadsafe_function(m->tsfn, r, napi_tsfn_nonblocking) != napi_ok) {
    if (r->req) fuse_reply_err(r->req, EIO);
    free(r->forgets);
    free(r);
  }
}

static void post(fuse_req_t req, ekv_req *r) {
  post_to(fuse_req_userdata(req), r);
}

static ekv_req *mkreq(int op, fuse_req_t req, fuse_ino_t ino, const char *name) {
  size_t n = name ? strlen(name) + 1 : 1;
  ekv_req *r = calloc(1, sizeof *r + n);
  if (!r) return NULL;
  r->op = op;
  r->req = req;
  r->ino = ino;
  if (name) memcpy(r->name, name, n);
  return r;
}

#define NEWREQ(r, op, req, ino, name)     \
  ekv_req *r = mkreq(op, req, ino, name); \
  if (!r) {                               \
    fuse_reply_err(req, ENOMEM);          \
    return;                               \
  }

static void ll_init(void *userdata, struct fuse_conn_info *conn) {
  ekv_mount *m = userdata;
  /* Many reads in flight (readahead and async reads are background requests). */
  if (m->max_read) conn->max_read = m->max_read;
  if (!(conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)) m->no_open = 0;
  if (!(conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)) m->no_opendir = 0;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (m->readdirplus == 0) {
    conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
  } else if (conn->capable & FUSE_CAP_READDIRPLUS) {
    conn->want |= FUSE_CAP_READDIRPLUS;
    if (m->readdirplus == 2 && (conn->capable & FUSE_CAP_READDIRPLUS_AUTO)) conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
    else conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  }
}

static int expect_answer(ekv_mount *m, fuse_req_t req, fuse_ino_t parent, const char *name);

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (expect_answer(fuse_req_userdata(req), req, parent, name)) return;
  NEWREQ(r, OP_LOOKUP, req, parent, name);
  post(req, r);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  ekv_req *r = mkreq(OP_FORGET, NULL, ino, NULL);
  if (r) {
    r->a = nlookup;
    post(req, r); /* a notification: req itself is still ours until reply_none */
  }
  fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  ekv_req *r = mkreq(OP_FORGET, NULL, 0, NULL);
  if (r) {
    r->forgets = malloc(count * sizeof *forgets);
    if (r->forgets) {
      memcpy(r->forgets, forgets, count * sizeof *forgets);
      r->nforgets = count;
      post(req, r);
    } else {
      free(r);
    }
  }
  fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  NEWREQ(r, OP_GETATTR, req, ino, NULL);
  post(req, r);
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, EROFS);
    return;
  }
  ekv_mount *m = fuse_req_userdata(req);
  if (m->no_opendir) {
    /* Zero-message opendirs (FUSE_CAP_NO_OPENDIR_SUPPORT): the kernel takes this ENOSYS as
     * success, sends no further OPENDIR or RELEASEDIR, and caches listings as with
     * keep_cache + cache_readdir. Readdirs then carry fh 0 and JS finds listings by path.
     * The kernel opendirs only inodes a lookup returned as directories. */
    fuse_reply_err(req, ENOSYS);
    return;
  }
  NEWREQ(r, OP_OPENDIR, req, ino, NULL);
  post(req, r);
}

static int store_release_parked(ekv_mount *m, fuse_ino_t dir, fuse_req_t end_req);

static int prep_answer(ekv_mount *m, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off);

static void ll_readdir_common(int op, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  ekv_mount *m = fuse_req_userdata(req);
  /* A listing prepared by JS is the first reply, sent from here; its files' pushes stay parked
   * until the kernel's next readdir, as when JS sends it. */
  if (op == OP_READDIRPLUS && off == 0 && prep_answer(m, req, ino, size, 0)) return;
  pthread_mutex_lock(&m->ends_mu);
  int at_end = m->dir_ends[ino % DIR_ENDS].ino == ino && (uint64_t)off >= m->dir_ends[ino % DIR_ENDS].end;
  pthread_mutex_unlock(&m->ends_mu);
  /* The kernel has taken in the entries of the last reply (it asks for more only then), so
   * the pushes parked for their files can go now. The end of the listing (the kernel's last
   * readdir of every directory) is answered behind them: the reader then finds the files'
   * pages in the cache instead of racing the pushes with READs. A readdir from offset 0 has
   * taken no reply of this listing yet: pushes parked for a reply still to come (a listing JS
   * is preparing) wait for the next one. */
  if ((off > 0 || at_end) && store_release_parked(m, ino, at_end ? req : NULL)) return;
  if (at_end) {
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  /* The rest of a listing JS handed over whole (after its pushes, released above). */
  if (op == OP_READDIRPLUS && off > 0 && prep_answer(m, req, ino, size, off)) return;
  NEWREQ(r, op, req, ino, NULL);
  r->a = size;
  r->b = off;
  r->fh = fi->fh;
  post(req, r);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  ll_readdir_common(OP_READDIR, req, ino, size, off, fi);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  ll_readdir_common(OP_READDIRPLUS, req, ino, size, off, fi);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  ekv_mount *m = fuse_req_userdata(req);
  ekv_req *r = mkreq(OP_RELEASEDIR, NULL, ino, NULL);
  if (r) r->fh = fi->fh;
  fuse_reply_err(req, 0);
  if (r) post_to(m, r);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
    fuse_reply_err(req, EROFS);
    return;
  }
  /* Answered here: the kernel opens only inodes a lookup returned as regular files, and the
   * tree is immutable, so there is nothing to check (reads still go through the tree's gate).
   * Pages stay cached across opens. JS only counts the open. */
  ekv_mount *m = fuse_req_userdata(req);
  ekv_req *r = mkreq(OP_OPEN, NULL, ino, NULL);
  if (m->no_open) {
    /* Zero-message opens (FUSE_CAP_NO_OPEN_SUPPORT): this ENOSYS is taken as success and the
     * kernel sends no further OPEN or RELEASE for files, keeping their pages (keep_cache). */
    fuse_reply_err(req, ENOSYS);
    if (r) {
      r->a = 1; /* tells JS: no more opens will be reported */
      post_to(m, r);
    }
    return;
  }
  struct fuse_file_info out;
  memset(&out, 0, sizeof out);
  out.keep_cache = 1;
  fuse_reply_open(req, &out);
  if (r) post_to(m, r);
}

static int store_answer_read(ekv_mount *m, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off);

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  if (store_answer_read(fuse_req_userdata(req), req, ino, size, off)) return;
  NEWREQ(r, OP_READ, req, ino, NULL);
  r->a = size;
  r->b = off;
  r->fh = fi->fh;
  post(req, r);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  fuse_reply_err(req, 0);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  struct statvfs st;
  memset(&st, 0, sizeof st);
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_namemax = 255;
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

/*
 * No file here has an extended attribute. ENOSYS (not ENODATA) makes the kernel stop
 * asking (fc->no_getxattr): later getxattr calls fail with EOPNOTSUPP without a request.
 * `ls -l` asks two per file (security.selinux, system.posix_acl_access): 160k round trips
 * through this thread for an 80k-entry directory. listxattr keeps answering an empty list
 * (its ENOSYS would make `rsync -X` and `tar --xattrs` report every file).
 */
static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  (void)ino;
  (void)name;
  (void)size;
  fuse_reply_err(req, ENOSYS);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  (void)ino;
  if (size == 0) fuse_reply_xattr(req, 0);
  else fuse_reply_buf(req, NULL, 0);
}

/* Every write-side operation: read-only file system. */
static void ro_setattr(fuse_req_t req, fuse_ino_t i, struct stat *a, int s, struct fuse_file_info *f) {
  (void)i, (void)a, (void)s, (void)f;
  fuse_reply_err(req, EROFS);
}
static void ro_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d) {
  (void)p, (void)n, (void)m, (void)d;
  fuse_reply_err(req, EROFS);
}
static void ro_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m) {
  (void)p, (void)n, (void)m;
  fuse_reply_err(req, EROFS);
}
static void ro_unlink(fuse_req_t req, fuse_ino_t p, const char *n) {
  (void)p, (void)n;
  fuse_reply_err(req, EROFS);
}
static void ro_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n) {
  (void)l, (void)p, (void)n;
  fuse_reply_err(req, EROFS);
}
static void ro_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn, unsigned int f) {
  (void)p, (void)n, (void)np, (void)nn, (void)f;
  fuse_reply_err(req, EROFS);
}
static void ro_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn) {
  (void)i, (void)np, (void)nn;
  fuse_reply_err(req, EROFS);
}
static void ro_write(fuse_req_t req, fuse_ino_t i, const char *b, size_t s, off_t o, struct fuse_file_info *f) {
  (void)i, (void)b, (void)s, (void)o, (void)f;
  fuse_reply_err(req, EROFS);
}
static void ro_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *f) {
  (void)p, (void)n, (void)m, (void)f;
  fuse_reply_err(req, EROFS);
}
static void ro_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t s, int f) {
  (void)i, (void)n, (void)v, (void)s, (void)f;
  fuse_reply_err(req, EROFS);
}
static void ro_removexattr(fuse_req_t req, fuse_ino_t i, const char *n) {
  (void)i, (void)n;
  fuse_reply_err(req, EROFS);
}
static void ro_fallocate(fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l, struct fuse_file_info *f) {
  (void)i, (void)m, (void)o, (void)l, (void)f;
  fuse_reply_err(req, EROFS);
}
static void ro_copy_file_range(fuse_req_t req, fuse_ino_t a, off_t b, struct fuse_file_info *c, fuse_ino_t d, off_t e,
                               struct fuse_file_info *f, size_t g, int h) {
  (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)h;
  fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops ll_ops = {
    .init = ll_init,
    .lookup = ll_lookup,
    .forget = ll_forget,
    .forget_multi = ll_forget_multi,
    .getattr = ll_getattr,
    .opendir = ll_opendir,
    .readdir = ll_readdir,
    .readdirplus = ll_readdirplus,
    .releasedir = ll_releasedir,
    .open = ll_open,
    .read = ll_read,
    .release = ll_release,
    .statfs = ll_statfs,
    .getxattr = ll_getxattr,
    .listxattr = ll_listxattr,
    .setattr = ro_setattr,
    .mknod = ro_mknod,
    .mkdir = ro_mkdir,
    .unlink = ro_unlink,
    .rmdir = ro_unlink,
    .symlink = ro_symlink,
    .rename = ro_rename,
    .link = ro_link,
    .write = ro_write,
    .create = ro_create,
    .setxattr = ro_setxattr,
    .removexattr = ro_removexattr,
    .fallocate = ro_fallocate,
    .copy_file_range = ro_copy_file_range,
};

static void *loop_main(void *arg) {
  ekv_mount *m = arg;
  /* Signals belong to Node's thread; workers inherit this mask. */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  int rc = -ENOMEM;
  if (cfg) {
    fuse_loop_cfg_set_max_threads(cfg, 16);
    rc = fuse_session_loop_mt(m->se, cfg);
    fuse_loop_cfg_destroy(cfg);
  }
  /* Unmounted (fusermount -u, our unmount) or failed: release the mount and the device. */
  fuse_session_unmount(m->se);
  ekv_req *r = calloc(1, sizeof *r + 1);
  if (r) {
    r->op = OP_EXIT;
    r->b = rc;
    napi_call_threadsafe_function(m->tsfn, r, napi_tsfn_blocking);
  }
  return NULL;
}

/* ---------------------------------------------------------------- prepared listings */

static void fill_attr(ekv_mount *m, struct stat *st, uint64_t ino, int kind, double size);

static void prep_free(ekv_prep *p) {
  free(p->names);
  free(p->meta);
  memset(p, 0, sizeof *p);
}

/* Take a prepared listing out of its slot (prep_mu held). */
static ekv_prep prep_take(ekv_mount *m, ekv_prep *slot) {
  ekv_prep p = *slot;
  m->prep_bytes -= slot->bytes;
  memset(slot, 0, sizeof *slot);
  return p;
}

/* One kernel lookup of each of `n` inodes (`stride` doubles apart from `inos`, zeros skipped)
 * forgotten for JS: one forget notification, as the kernel's own. Any thread. */
static void forget_lookups(ekv_mount *m, const double *inos, size_t n, size_t stride) {
  struct fuse_forget_data *f = n ? malloc(n * sizeof *f) : NULL;
  size_t k = 0;
  for (size_t i = 0; f && i < n; i++) {
    if (inos[i * stride] == 0) continue;
    f[k].ino = (uint64_t)inos[i * stride];
    f[k++].nlookup = 1;
  }
  ekv_req *r = k ? mkreq(OP_FORGET, NULL, 0, NULL) : NULL;
  if (!r) {
    free(f);
    return;
  }
  r->forgets = f;
  r->nforgets = k;
  post_to(m, r);
}

/* A prepared listing let go with entries the kernel never took: the lookups JS counted for
 * those are forgotten (a forget notification, as the kernel's own), and it is freed. */
static void prep_drop(ekv_mount *m, ekv_prep *p) {
  if (p->next < p->n) forget_lookups(m, p->meta + 3 * (size_t)p->next, p->n - p->next, 3);
  prep_free(p);
}

/*
 * Answer a readdirplus of `ino` at `off` from its prepared listing, when `off` is where the
 * kernel's reading of it stands (its first reply, or the one after the last this answered);
 * 1 when answered. Any other offset (a second reader, a reply the kernel did not take) is
 * JS's. The listing goes once its last entry went. Fuse threads.
 */
static int prep_answer(ekv_mount *m, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off) {
  pthread_mutex_lock(&m->prep_mu);
  ekv_prep *slot = &m->prep[ino % PREP_SLOTS];
  if (slot->dir != ino || off < 0 || (uint64_t)off != (uint64_t)slot->base + slot->next) {
    pthread_mutex_unlock(&m->prep_mu);
    return 0;
  }
  char *buf = malloc(size ? size : 1);
  if (!buf) {
    pthread_mutex_unlock(&m->prep_mu);
    return 0;
  }
  size_t pos = 0;
  const char *name = slot->names + slot->at;
  uint32_t first = slot->next, i = first;
  for (; i < slot->n; i++) {
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    uint64_t child = (uint64_t)slot->meta[3 * i];
    fill_attr(m, &e.attr, child, (int)slot->meta[3 * i + 1], slot->meta[3 * i + 2]);
    e.ino = child;
    e.attr_timeout = m->timeout;
    e.entry_timeout = m->timeout;
    size_t ent = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e, (off_t)slot->base + i + 1);
    if (ent > size - pos) break;
    pos += ent;
    name += strlen(name) + 1;
  }
  if (i == first) {
    /* Not one entry fits the kernel's buffer: JS answers it. */
    pthread_mutex_unlock(&m->prep_mu);
    free(buf);
    return 0;
  }
  /* The inodes of this reply, forgotten if the kernel does not take it. */
  double *sent = malloc((size_t)(i - first) * 3 * sizeof(double));
  if (sent) memcpy(sent, slot->meta + 3 * (size_t)first, (size_t)(i - first) * 3 * sizeof(double));
  if (first == 0) m->prep_answered++;
  int whole = slot->base == 0; /* prepared ahead: the kernel's first reply of it is this one */
  uint64_t end = (uint64_t)slot->base + slot->n;
  slot->next = i;
  slot->at = (size_t)(name - slot->names);
  int done = i == slot->n;
  ekv_prep p;
  if (done) p = prep_take(m, slot);
  pthread_mutex_unlock(&m->prep_mu);
  if (done) {
    pthread_mutex_lock(&m->ends_mu);
    m->dir_ends[ino % DIR_ENDS].ino = ino;
    m->dir_ends[ino % DIR_ENDS].end = end;
    pthread_mutex_unlock(&m->ends_mu);
    prep_free(&p);
  }
  if (fuse_reply_buf(req, buf, pos) != 0 && sent) forget_lookups(m, sent, i - first, 3);
  free(sent);
  free(buf);
  /* JS keeps its read-ahead going from here, as from a readdir it answered (the rest of a
   * listing follows a first reply JS sent itself). */
  if (first == 0 && whole) {
    ekv_req *r = mkreq(OP_PREPARED, NULL, ino, NULL);
    if (r) post_to(m, r);
  }
  return 1;
}

/* ---------------------------------------------------------------- JS side */

#define CHECK(env, call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error((env), NULL, "ekvfuse: " #call);    \
      return NULL;                                         \
    }                                                      \
  } while (0)

static void store_shutdown(ekv_mount *m);
static uint64_t expect_free(ekv_mount *m, uint32_t i, int unused);

static void teardown(ekv_mount *m) {
  /* The loop has returned and every worker is joined: drop unanswered requests, free the session. */
  for (uint32_t i = 0; i < m->nslots; i++) {
    if (m->slots[i].req) {
      fuse_reply_none(m->slots[i].req);
      m->slots[i].req = NULL;
      m->freelist[m->nfree++] = i;
    }
  }
  m->pending = 0;
  for (int i = 0; i < PREP_SLOTS; i++) prep_free(&m->prep[i]);
  pthread_mutex_lock(&m->expect_mu);
  for (uint32_t i = 0; i < EXPECT_SLOTS; i++) expect_free(m, i, 0); /* the session is over: nothing to forget */
  pthread_mutex_unlock(&m->expect_mu);
  store_shutdown(m);
  if (m->se) {
    fuse_session_destroy(m->se);
    m->se = NULL;
  }
}

/*
 * The kernel interrupted a request JS holds (its caller got a signal): libfuse calls this on
 * the fuse thread that read the INTERRUPT, or at once from fuse_req_interrupt_func when it came
 * first. It only tells the JS thread, which owns the request table and decides (js_interrupt):
 * replying here could race JS's own reply, and from inside fuse_req_interrupt_func would free
 * the request under libfuse's lock. data: the request's id.
 */
static void on_interrupt(fuse_req_t req, void *data) {
  ekv_req *r = mkreq(OP_INTERRUPT, NULL, 0, NULL);
  if (!r) return;
  r->a = (uint64_t)(uintptr_t)data;
  post(req, r);
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  ekv_mount *m = context;
  ekv_req *r = data;
  if (env == NULL || js_cb == NULL) {
    if (r->req) fuse_reply_err(r->req, EIO);
    free(r->forgets);
    free(r);
    return;
  }
  napi_value undef, argv[7];
  napi_get_undefined(env, &undef);
  if (r->op == OP_FORGET) {
    size_t n = r->forgets ? r->nforgets : 1;
    for (size_t k = 0; k < n; k++) {
      uint64_t ino = r->forgets ? r->forgets[k].ino : r->ino;
      uint64_t nl = r->forgets ? r->forgets[k].nlookup : r->a;
      napi_create_int32(env, OP_FORGET, &argv[0]);
      napi_create_double(env, 0, &argv[1]);
      napi_create_double(env, (double)ino, &argv[2]);
      napi_create_double(env, (double)nl, &argv[3]);
      argv[4] = argv[5] = argv[6] = undef;
      napi_call_function(env, undef, js_cb, 7, argv, NULL);
    }
    free(r->forgets);
    free(r);
    return;
  }
  double id = 0;
  if (r->op == OP_EXIT) {
    if (m->thread_started) {
      pthread_join(m->thread, NULL);
      m->thread_started = 0;
    }
    m->loop_done = 1;
    teardown(m);
  } else if (r->req) {
    if (m->loop_done || slot_alloc(m, r->req, &id) != 0) {
      fuse_reply_err(r->req, m->loop_done ? ENOTCONN : ENOMEM);
      free(r);
      return;
    }
    /* Unanswered, and only this thread answers it: safe to register (see on_interrupt). */
    fuse_req_interrupt_func(r->req, on_interrupt, (void *)(uintptr_t)(uint64_t)id);
  }
  napi_create_int32(env, r->op, &argv[0]);
  napi_create_double(env, id, &argv[1]);
  napi_create_double(env, (double)r->ino, &argv[2]);
  napi_create_double(env, (double)r->a, &argv[3]);
  napi_create_double(env, (double)r->b, &argv[4]);
  napi_create_double(env, (double)r->fh, &argv[5]);
  if (r->op == OP_LOOKUP) napi_create_string_utf8(env, r->name, NAPI_AUTO_LENGTH, &argv[6]);
  else argv[6] = undef;
  int op = r->op;
  free(r);
  napi_call_function(env, undef, js_cb, 7, argv, NULL);
  if (op == OP_EXIT) napi_release_threadsafe_function(m->tsfn, napi_tsfn_release);
}

static void tsfn_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint;
}

static ekv_mount *get_mount(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "ekvfuse: bad mount handle");
    return NULL;
  }
  return p;
}

static double arg_double(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

static char *arg_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (!s) return NULL;
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static void fill_attr(ekv_mount *m, struct stat *st, uint64_t ino, int kind, double size) {
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  if (kind == 1) {
    st->st_mode = S_IFDIR | 0555;
    st->st_nlink = 2;
  } else if (kind == 0) {
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
  }
  st->st_uid = m->uid;
  st->st_gid = m->gid;
  st->st_size = (off_t)size;
  st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
  st->st_blksize = 4096;
  st->st_atim = m->time;
  st->st_mtim = m->time;
  st->st_ctim = m->time;
}

/*
 * mount(mountpoint, options, debug, uid, gid, timeSec, timeout, readdirplus, dispatch) -> handle
 * dispatch(op, id, ino, a, b, fh, name) is called on the JS thread for every request.
 */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 9) {
    napi_throw_type_error(env, NULL, "ekvfuse.mount: expected 9 arguments");
    return NULL;
  }
  ekv_mount *m = calloc(1, sizeof *m);
  if (!m) {
    napi_throw_error(env, NULL, "ekvfuse.mount: out of memory");
    return NULL;
  }
  pthread_mutex_init(&m->ends_mu, NULL);
  pthread_mutex_init(&m->prep_mu, NULL);
  pthread_mutex_init(&m->expect_mu, NULL);
  pthread_mutex_init(&m->store_mu, NULL);
  pthread_cond_init(&m->store_cv, NULL);
  char *mnt = arg_string(env, argv[0]);
  char *opts = arg_string(env, argv[1]);
  bool debug = false;
  napi_get_value_bool(env, argv[2], &debug);
  m->uid = (uid_t)arg_double(env, argv[3]);
  m->gid = (gid_t)arg_double(env, argv[4]);
  double t = arg_double(env, argv[5]);
  m->time.tv_sec = (time_t)t;
  m->time.tv_nsec = (long)((t - (double)m->time.tv_sec) * 1e9);
  m->timeout = arg_double(env, argv[6]);
  m->readdirplus = (int)arg_double(env, argv[7]);
  if (!mnt || !opts) {
    free(mnt);
    free(opts);
    free(m);
    napi_throw_type_error(env, NULL, "ekvfuse.mount: mountpoint and options must be strings");
    return NULL;
  }
  m->mountpoint = mnt;
  const char *no = getenv("EKV_FUSE_NO_OPEN"); /* "0": keep OPEN/RELEASE round trips */
  m->no_open = !(no && no[0] == '0');
  const char *nod = getenv("EKV_FUSE_NO_OPENDIR"); /* "0": keep OPENDIR/RELEASEDIR round trips */
  m->no_opendir = !(nod && nod[0] == '0');
  const char *mr = strstr(opts, "max_read=");
  if (mr) m->max_read = (unsigned)strtoul(mr + 9, NULL, 10);

  napi_value name;
  napi_create_string_utf8(env, "ekvfuse", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[8], NULL, name, 0, 1, NULL, tsfn_finalize, m, call_js, &m->tsfn) != napi_ok) {
    free(opts);
    free(mnt);
    free(m);
    napi_throw_error(env, NULL, "ekvfuse.mount: cannot create the dispatch queue");
    return NULL;
  }

  char *fargv[5] = {"ekv-mount", "-o", opts, NULL, NULL};
  int fargc = 3;
  if (debug) fargv[fargc++] = "-d";
  struct fuse_args args = FUSE_ARGS_INIT(fargc, fargv);
  m->se = fuse_session_new(&args, &ll_ops, sizeof ll_ops, m);
  fuse_opt_free_args(&args);
  free(opts);
  const char *fail = NULL;
  if (!m->se) fail = "ekvfuse.mount: fuse_session_new failed (bad options?)";
  else if (fuse_session_mount(m->se, mnt) != 0) fail = "ekvfuse.mount: fuse_session_mount failed";
  else if (pthread_create(&m->thread, NULL, loop_main, m) != 0) {
    fuse_session_unmount(m->se);
    fail = "ekvfuse.mount: cannot start the session thread";
  }
  if (fail) {
    if (m->se) fuse_session_destroy(m->se);
    napi_release_threadsafe_function(m->tsfn, napi_tsfn_abort);
    free(mnt);
    free(m);
    napi_throw_error(env, NULL, fail);
    return NULL;
  }
  m->thread_started = 1;
  napi_value ext;
  CHECK(env, napi_create_external(env, m, NULL, NULL, &ext));
  return ext;
}

/* Take the request named by (handle, id) from the arguments; NULL when it is gone (already answered, session ended). */
/* The `want` arguments of a call whose first is a mount handle: the mount, or NULL (thrown). */
static ekv_mount *mount_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "ekvfuse: too few arguments");
    return NULL;
  }
  return get_mount(env, argv[0]);
}

/* A Float64Array of 3 numbers per name (replyDir's and prepareDir's meta), or NULL. */
static const double *meta_arg(napi_env env, napi_value v, uint32_t n) {
  napi_typedarray_type tt;
  size_t len = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, v, &tt, &len, &data, NULL, NULL) != napi_ok || tt != napi_float64_array || len < (size_t)n * 3) return NULL;
  return data;
}

static fuse_req_t take(napi_env env, napi_callback_info info, size_t want, napi_value *argv, ekv_mount **mp) {
  ekv_mount *m = mount_args(env, info, want, argv);
  if (!m) return NULL;
  if (mp) *mp = m;
  return slot_take(m, arg_double(env, argv[1]));
}

/* replyErr(h, id, errno) */
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  fuse_req_t req = take(env, info, 3, argv, NULL);
  if (req) fuse_reply_err(req, (int)arg_double(env, argv[2]));
  return NULL;
}

/* replyEntry(h, id, ino, kind, size) -> whether the request was still there to answer (an
 * interrupted one is gone: the kernel then holds no lookup of ino). ino 0 = negative entry. */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  napi_value argv[5], answered;
  ekv_mount *m = NULL;
  fuse_req_t req = take(env, info, 5, argv, &m);
  napi_get_boolean(env, req != NULL, &answered);
  if (!req) return answered;
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  e.ino = (fuse_ino_t)arg_double(env, argv[2]);
  fill_attr(m, &e.attr, e.ino, (int)arg_double(env, argv[3]), arg_double(env, argv[4]));
  e.attr_timeout = m->timeout;
  e.entry_timeout = m->timeout;
  fuse_reply_entry(req, &e);
  return answered;
}

/* replyAttr(h, id, ino, kind, size) */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  ekv_mount *m = NULL;
  fuse_req_t req = take(env, info, 5, argv, &m);
  if (!req) return NULL;
  struct stat st;
  fill_attr(m, &st, (uint64_t)arg_double(env, argv[2]), (int)arg_double(env, argv[3]), arg_double(env, argv[4]));
  fuse_reply_attr(req, &st, m->timeout);
  return NULL;
}

/* replyOpen(h, id, fh, flags) */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  fuse_req_t req = take(env, info, 4, argv, NULL);
  if (!req) return NULL;
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.fh = (uint64_t)arg_double(env, argv[2]);
  int flags = (int)arg_double(env, argv[3]);
  fi.keep_cache = (flags & OPEN_KEEP_CACHE) ? 1 : 0;
  fi.cache_readdir = (flags & OPEN_CACHE_DIR) ? 1 : 0;
  fuse_reply_open(req, &fi);
  return NULL;
}

/* A Buffer argument's bytes; false if it is not a Buffer (nothing thrown). */
static bool buffer_of(napi_env env, napi_value v, void **data, size_t *len) {
  bool isbuf = false;
  napi_is_buffer(env, v, &isbuf);
  return isbuf && napi_get_buffer_info(env, v, data, len) == napi_ok;
}

/* replyBuf(h, id, buffer): a bad buffer answers EIO. */
static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  fuse_req_t req = take(env, info, 3, argv, NULL);
  if (!req) return NULL;
  void *data = NULL;
  size_t len = 0;
  if (buffer_of(env, argv[2], &data, &len)) fuse_reply_buf(req, data, len);
  else fuse_reply_err(req, EIO);
  return NULL;
}

/*
 * replyDir(h, id, plus, size, names, meta, firstOff, dirIno, total) -> entries added.
 * meta: Float64Array of [ino, kind (0 file, 1 dir, 2 unknown), size] per name; entry i gets
 * offset firstOff + i + 1. With plus, an entry with ino 0 carries no attributes (the kernel
 * does not count a lookup for it). total: the listing's length; a reply that reaches it
 * marks the listing's end, and later readdirs of dirIno from there are answered here.
 */
static napi_value js_reply_dir(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  ekv_mount *m = NULL;
  fuse_req_t req = take(env, info, 9, argv, &m);
  napi_value result;
  napi_create_uint32(env, 0, &result);
  if (!req) return result;
  bool plus = false;
  napi_get_value_bool(env, argv[2], &plus);
  size_t size = (size_t)arg_double(env, argv[3]);
  uint32_t n = 0;
  napi_get_array_length(env, argv[4], &n);
  const double *meta = meta_arg(env, argv[5], n);
  if (!meta) {
    fuse_reply_err(req, EIO);
    napi_throw_type_error(env, NULL, "ekvfuse.replyDir: meta must be a Float64Array of 3 numbers per name");
    return NULL;
  }
  double first = arg_double(env, argv[6]);
  char *buf = malloc(size ? size : 1);
  if (!buf) {
    fuse_reply_err(req, ENOMEM);
    return result;
  }
  size_t pos = 0;
  uint32_t added = 0;
  char name[1024];
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t nl = 0;
    if (napi_get_element(env, argv[4], i, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, name, sizeof name, &nl) != napi_ok)
      break;
    uint64_t ino = (uint64_t)meta[3 * i];
    int kind = (int)meta[3 * i + 1];
    off_t off = (off_t)(first + i + 1);
    size_t ent;
    if (plus) {
      struct fuse_entry_param e;
      memset(&e, 0, sizeof e);
      fill_attr(m, &e.attr, ino ? ino : UNKNOWN_INO, kind, meta[3 * i + 2]);
      e.ino = ino;
      if (ino) {
        e.attr_timeout = m->timeout;
        e.entry_timeout = m->timeout;
      }
      ent = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e, off);
    } else {
      struct stat st;
      fill_attr(m, &st, ino ? ino : UNKNOWN_INO, kind, 0);
      ent = fuse_add_direntry(req, buf + pos, size - pos, name, &st, off);
    }
    if (ent > size - pos) break;
    pos += ent;
    added++;
  }
  /* The end is known before the reply goes: the kernel's next readdir (answered here, behind
   * the pushes parked for this reply's files) can follow the reply at once. */
  uint64_t dir = (uint64_t)arg_double(env, argv[7]);
  double total = arg_double(env, argv[8]);
  if (dir && total >= 0 && first + added >= total) {
    pthread_mutex_lock(&m->ends_mu);
    m->dir_ends[dir % DIR_ENDS].ino = dir;
    m->dir_ends[dir % DIR_ENDS].end = (uint64_t)total;
    pthread_mutex_unlock(&m->ends_mu);
  }
  fuse_reply_buf(req, buf, pos);
  free(buf);
  napi_create_uint32(env, added, &result);
  return result;
}

typedef struct {
  napi_async_work work;
  napi_ref cb;
  char *mountpoint;
  int err;
} unmount_job;

static void unmount_execute(napi_env env, void *data) {
  (void)env;
  unmount_job *j = data;
  /* Lazy unmount, as fuse_session_unmount does: the kernel ends the connection once the
   * mount is unused, the session loop sees ENODEV and returns, and its thread then calls
   * fuse_session_unmount (closing the device) and reports OP_EXIT to JS. */
  if (geteuid() == 0) {
    j->err = umount2(j->mountpoint, MNT_DETACH) == 0 ? 0 : errno;
    return;
  }
  pid_t pid;
  char *argv[] = {"fusermount3", "-u", "-q", "-z", "--", j->mountpoint, NULL};
  int rc = posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ);
  if (rc != 0) {
    j->err = rc;
    return;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  j->err = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EIO;
}

static void unmount_complete(napi_env env, napi_status status, void *data) {
  unmount_job *j = data;
  napi_value cb, undef, arg;
  napi_get_reference_value(env, j->cb, &cb);
  napi_get_undefined(env, &undef);
  if (status == napi_ok && j->err == 0) {
    napi_get_null(env, &arg);
  } else {
    const char *msg = strerror(j->err ? j->err : EIO);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &arg);
  }
  napi_call_function(env, undef, cb, 1, &arg, NULL);
  napi_delete_reference(env, j->cb);
  napi_delete_async_work(env, j->work);
  free(j->mountpoint);
  free(j);
}

/* unmount(h, cb(err: string | null)): lazy kernel unmount off the JS thread. */
static napi_value js_unmount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "ekvfuse.unmount: expected (handle, callback)");
    return NULL;
  }
  ekv_mount *m = get_mount(env, argv[0]);
  if (!m) return NULL;
  unmount_job *j = calloc(1, sizeof *j);
  if (!j || !(j->mountpoint = strdup(m->mountpoint))) {
    free(j);
    napi_throw_error(env, NULL, "ekvfuse.unmount: out of memory");
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "ekvfuse.unmount", NAPI_AUTO_LENGTH, &name);
  CHECK(env, napi_create_reference(env, argv[1], 1, &j->cb));
  CHECK(env, napi_create_async_work(env, NULL, name, unmount_execute, unmount_complete, j, &j->work));
  CHECK(env, napi_queue_async_work(env, j->work));
  return NULL;
}

/*
 * Page-cache pushes run on a thread of their own: notify_store waits for the page
 * locks of the pages it fills, and a page is locked while the kernel waits for our
 * answer to a READ of it. Pushing from the JS thread, which sends those answers,
 * could wait forever.
 */
/* One push into the kernel's page cache; -ENOENT when the kernel has no such inode. */
static int store_write(ekv_mount *m, ekv_store *q) {
  struct fuse_bufvec bv = FUSE_BUFVEC_INIT(q->len);
  bv.buf[0].mem = q->data;
  return fuse_lowlevel_notify_store(m->se, (fuse_ino_t)q->ino, q->off, &bv, 0);
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Put a push on the list of those waiting to be tried, in due order. store_mu held. */
static void store_retry_at(ekv_mount *m, ekv_store *q, uint64_t due_ns) {
  q->due_ns = due_ns;
  q->next = NULL;
  ekv_store **at = &m->retry_head;
  while (*at && (*at)->due_ns <= q->due_ns) at = &(*at)->next;
  q->next = *at;
  *at = q;
}

/*
 * A push refused with ENOENT: the kernel has not instantiated the inode yet (a listing's
 * reply is parsed by the reader when it next runs, and a file rendered after the reply can
 * get here first), or has evicted it. Tried again a few times, 1, 2, 4, ... ms apart, before
 * it is dropped (the file is then read as usual). store_mu held.
 */
static void store_retry_later(ekv_mount *m, ekv_store *q, uint64_t now) {
  q->tries++;
  store_retry_at(m, q, now + (1000000u << (q->tries - 1)));
}

/* Move the retries due by `now` to the queue's tail (their bytes are still counted). store_mu held. */
static void store_retry_due(ekv_mount *m, uint64_t now) {
  while (m->retry_head && m->retry_head->due_ns <= now) {
    ekv_store *q = m->retry_head;
    m->retry_head = q->next;
    q->next = NULL;
    if (m->store_tail) m->store_tail->next = q;
    else m->store_head = q;
    m->store_tail = q;
  }
}

/* Wait on store_cv, until the first retry is due when there is one. store_mu held. */
static void store_wait(ekv_mount *m) {
  if (!m->retry_head) {
    pthread_cond_wait(&m->store_cv, &m->store_mu);
    return;
  }
  uint64_t now = mono_ns();
  if (m->retry_head->due_ns <= now) return;
  uint64_t wait = m->retry_head->due_ns - now;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts); /* the condition variable's clock */
  uint64_t ns = (uint64_t)ts.tv_nsec + wait;
  ts.tv_sec += (time_t)(ns / 1000000000u);
  ts.tv_nsec = (long)(ns % 1000000000u);
  pthread_cond_timedwait(&m->store_cv, &m->store_mu, &ts);
}

static void *store_main(void *arg) {
  ekv_mount *m = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&m->store_mu);
  for (;;) {
    for (;;) {
      if (m->retry_head) store_retry_due(m, mono_ns());
      if (m->store_head || m->store_stop) break;
      store_wait(m);
    }
    ekv_store *q = m->store_head;
    if (!q) break; /* stopped and drained */
    m->store_head = q->next;
    if (!m->store_head) m->store_tail = NULL;
    m->store_busy = 1;
    pthread_mutex_unlock(&m->store_mu);
    int again = 0;
    if (q->req) {
      if (m->store_stop) fuse_reply_none(q->req);
      else fuse_reply_buf(q->req, q->data, q->len);
    } else if (!m->store_stop) {
      again = store_write(m, q) == -ENOENT && q->tries < STORE_RETRIES;
    }
    pthread_mutex_lock(&m->store_mu);
    m->store_busy = 0;
    if (again && !m->store_stop) {
      store_retry_later(m, q, mono_ns());
      m->store_retried++;
      continue;
    }
    if (!q->req) m->pushes_of[q->ino % PUSH_COUNT_SLOTS]--;
    m->store_bytes -= q->len;
    free(q);
  }
  /* Stopped: the retries still waiting go too. */
  while (m->retry_head) {
    ekv_store *q = m->retry_head;
    m->retry_head = q->next;
    m->pushes_of[q->ino % PUSH_COUNT_SLOTS]--;
    m->store_bytes -= q->len;
    free(q);
  }
  pthread_mutex_unlock(&m->store_mu);
  return NULL;
}

/* The queued or retrying whole-file push of `ino` and the link pointing at it (store_mu held). */
static ekv_store **store_find(ekv_mount *m, uint64_t ino, ekv_store **prev) {
  ekv_store **lists[2] = {&m->retry_head, &m->store_head};
  for (int i = 0; i < 2; i++) {
    *prev = NULL;
    for (ekv_store **at = lists[i]; *at; at = &(*at)->next) {
      ekv_store *q = *at;
      if (!q->req && q->ino == ino && q->off == 0) return at;
      *prev = q;
    }
  }
  return NULL;
}

/*
 * A READ of a file whose push is still queued, or waiting to be tried again (fuse thread):
 * answered here from the push's bytes, with no round trip through JS. This is the reader
 * that got ahead of the push: a file looked up and read at once (sha256sum -c, cat), or the
 * first file of a listing whose reply the reader parsed before the push was written. A READ
 * that takes the whole file takes the push off the queue (its answer fills the same pages);
 * a part of it leaves the push queued. Returns 1 when answered.
 */
static int store_answer_read(ekv_mount *m, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off) {
  if (off < 0) return 0;
  pthread_mutex_lock(&m->store_mu);
  if (!m->store_started || m->store_stop || m->pushes_of[ino % PUSH_COUNT_SLOTS] == 0) {
    pthread_mutex_unlock(&m->store_mu);
    return 0;
  }
  ekv_store *prev;
  ekv_store **at = store_find(m, ino, &prev);
  ekv_store *q = at ? *at : NULL;
  if (!q || (size_t)off > q->len) {
    pthread_mutex_unlock(&m->store_mu);
    return 0;
  }
  size_t n = q->len - (size_t)off < size ? q->len - (size_t)off : size;
  m->store_read_answers++;
  if (off != 0 || n != q->len) {
    fuse_reply_buf(req, q->data + off, n);
    pthread_mutex_unlock(&m->store_mu);
    return 1;
  }
  *at = q->next;
  if (m->store_tail == q) m->store_tail = prev;
  m->pushes_of[q->ino % PUSH_COUNT_SLOTS]--;
  m->store_bytes -= q->len;
  pthread_mutex_unlock(&m->store_mu);
  fuse_reply_buf(req, q->data, q->len);
  free(q);
  return 1;
}

/* Free a parked list (store_mu held). */
static void park_drop(ekv_mount *m, int slot) {
  for (ekv_store *q = m->parked[slot].head; q;) {
    ekv_store *next = q->next;
    free(q);
    q = next;
  }
  m->parked_bytes -= m->parked[slot].bytes;
  m->parked[slot].head = m->parked[slot].tail = NULL;
  m->parked[slot].bytes = 0;
}

/* Stop the push thread (drops what is queued and parked); before the session is destroyed. */
static void store_shutdown(ekv_mount *m) {
  pthread_mutex_lock(&m->store_mu);
  for (int i = 0; i < PARK_SLOTS; i++) park_drop(m, i);
  pthread_mutex_unlock(&m->store_mu);
  if (!m->store_started) return;
  pthread_mutex_lock(&m->store_mu);
  m->store_stop = 1;
  pthread_cond_signal(&m->store_cv);
  pthread_mutex_unlock(&m->store_mu);
  pthread_join(m->store_thread, NULL);
  pthread_mutex_lock(&m->store_mu);
  m->store_started = 0;
  pthread_mutex_unlock(&m->store_mu);
}

/* A queue record (push, or an answer when req is set); NULL without memory. */
static ekv_store *store_rec(fuse_req_t req, uint64_t ino, off_t off, const void *data, size_t len) {
  ekv_store *q = malloc(sizeof *q + (len ? len : 1));
  if (!q) return NULL;
  q->next = NULL;
  q->req = req;
  q->ino = ino;
  q->off = off;
  q->len = len;
  q->tries = 0;
  q->due_ns = 0;
  if (len) memcpy(q->data, data, len);
  return q;
}

/* Start the push thread if needed (JS thread); 0 or EAGAIN/ENOTCONN. */
static int store_start(ekv_mount *m) {
  if (!m->se || m->loop_done) return ENOTCONN;
  if (!m->store_started) {
    m->store_stop = 0;
    if (pthread_create(&m->store_thread, NULL, store_main, m) != 0) return EAGAIN;
    pthread_mutex_lock(&m->store_mu); /* fuse threads read it (store_release_parked) */
    m->store_started = 1;
    pthread_mutex_unlock(&m->store_mu);
  }
  return 0;
}

/* Append records to the queue (store_mu held) and wake the push thread. */
static void store_append(ekv_mount *m, ekv_store *head, ekv_store *tail, size_t bytes) {
  for (ekv_store *q = head; q; q = q->next) {
    if (!q->req) m->pushes_of[q->ino % PUSH_COUNT_SLOTS]++;
    if (q == tail) break;
  }
  if (m->store_tail) m->store_tail->next = head;
  else m->store_head = head;
  m->store_tail = tail;
  m->store_bytes += bytes;
  pthread_cond_signal(&m->store_cv);
}

/*
 * A readdir of `dir` arrived (fuse thread): queue the pushes parked for it. With end_req
 * (the readdir at the listing's end), that empty answer is queued behind whatever pushes
 * are pending; returns 1 when it was (the caller must not answer it).
 */
static int store_release_parked(ekv_mount *m, fuse_ino_t dir, fuse_req_t end_req) {
  int answered = 0;
  ekv_store *mine = NULL;
  pthread_mutex_lock(&m->store_mu);
  int slot = (int)(dir % PARK_SLOTS);
  if (m->parked[slot].dir == dir && m->parked[slot].head && m->store_started && !m->store_stop) {
    size_t bytes = m->parked[slot].bytes;
    /* The listing's end with nothing queued before its pushes: written by this fuse thread,
     * which then answers the end, with no hand-off to the push thread. */
    if (end_req && !m->store_head && !m->store_busy) mine = m->parked[slot].head;
    else store_append(m, m->parked[slot].head, m->parked[slot].tail, bytes);
    m->parked_bytes -= bytes;
    m->parked[slot].head = m->parked[slot].tail = NULL;
    m->parked[slot].bytes = 0;
  }
  if (mine) {
    pthread_mutex_unlock(&m->store_mu);
    while (mine) {
      ekv_store *q = mine;
      mine = q->next;
      store_write(m, q);
      free(q);
    }
    fuse_reply_buf(end_req, NULL, 0);
    return 1;
  }
  if (end_req && m->store_started && !m->store_stop && (m->store_head || m->store_busy)) {
    ekv_store *q = store_rec(end_req, 0, 0, NULL, 0);
    if (q) {
      store_append(m, q, q, 0);
      answered = 1;
    }
  }
  pthread_mutex_unlock(&m->store_mu);
  return answered;
}

/*
 * Hold a push for the READ that follows a lookup (store_mu held): it waits with the retries, due
 * STORE_HOLD_NS from now, and the READ takes it from there (store_answer_read).
 */
static void store_hold_locked(ekv_mount *m, ekv_store *q) {
  m->pushes_of[q->ino % PUSH_COUNT_SLOTS]++;
  m->store_bytes += q->len;
  store_retry_at(m, q, mono_ns() + STORE_HOLD_NS);
  /* Most holds are taken by their READ within the millisecond: waking the push thread for each
   * cost the caller a futex call and the push thread two wakes per lookup. It is woken every
   * HOLD_WAKE_EVERY holds instead; the ones no READ took go then, or at its next wake. */
  if (++m->holds_since_wake >= HOLD_WAKE_EVERY) {
    m->holds_since_wake = 0;
    pthread_cond_signal(&m->store_cv);
  }
}

/*
 * Queue a push (req NULL) or a deferred READ answer; 0, or EAGAIN/ENOMEM/ENOTCONN when not
 * queued. With `hold`, a push of a file JS is about to answer a LOOKUP of (JS thread, before
 * that reply): the kernel has no such inode until the reader parses the reply, so a push now
 * would be refused. It waits with the retries instead, due STORE_HOLD_NS from now, and the
 * reader's READ right after the lookup takes it from there (store_answer_read) with no round
 * trip through JS; a lookup with no read after it (a stat) gets the push once the push thread
 * wakes (see below).
 */
static int store_enqueue(ekv_mount *m, fuse_req_t req, uint64_t ino, off_t off, const void *data, size_t len, int hold) {
  int err = store_start(m);
  if (err) return err;
  ekv_store *q = store_rec(req, ino, off, data, len);
  if (!q) return ENOMEM;
  pthread_mutex_lock(&m->store_mu);
  /* Answers are queued (they are bounded by max_read and by the requests in flight), but never
   * behind a push of their own inode, queued or to be tried again: that push waits for the page
   * lock the READ holds until it is answered, and the push thread would wait on itself. The
   * caller answers at once instead. (A hash collision only costs that wait for the pushes.) */
  if (req && m->pushes_of[ino % PUSH_COUNT_SLOTS] > 0) {
    pthread_mutex_unlock(&m->store_mu);
    free(q);
    return EAGAIN;
  }
  if (!req && m->store_bytes + len > STORE_QUEUE_MAX) {
    pthread_mutex_unlock(&m->store_mu);
    free(q);
    return EAGAIN;
  }
  if (!hold) {
    store_append(m, q, q, len);
    pthread_mutex_unlock(&m->store_mu);
    return 0;
  }
  store_hold_locked(m, q);
  pthread_mutex_unlock(&m->store_mu);
  return 0;
}

/* A Buffer argument's bytes, or a TypeError thrown (-1). */
static int buffer_arg(napi_env env, napi_value v, void **data, size_t *len, const char *what) {
  if (buffer_of(env, v, data, len)) return 0;
  napi_throw_type_error(env, NULL, what);
  return -1;
}

/* Park a push for directory `dir` (see js_store); 0, or EAGAIN/ENOMEM/ENOTCONN when not parked. */
static int store_park(ekv_mount *m, uint64_t dir, uint64_t ino, off_t off, const void *data, size_t len) {
  int err = store_start(m);
  if (err) return err;
  ekv_store *q = store_rec(NULL, ino, off, data, len);
  if (!q) return ENOMEM;
  pthread_mutex_lock(&m->store_mu);
  int slot = (int)(dir % PARK_SLOTS);
  if (m->parked[slot].dir != dir) {
    park_drop(m, slot);
    m->parked[slot].dir = dir;
  }
  if (m->parked_bytes + len > PARK_MAX) {
    free(q);
    err = EAGAIN;
  } else {
    if (m->parked[slot].tail) m->parked[slot].tail->next = q;
    else m->parked[slot].head = q;
    m->parked[slot].tail = q;
    m->parked[slot].bytes += len;
    m->parked_bytes += len;
  }
  pthread_mutex_unlock(&m->store_mu);
  return err;
}

/*
 * prepareDir(h, dirIno, names, meta, base) -> 0, or ENOTCONN/ENOMEM/EINVAL/EAGAIN (the listings
 * prepared hold PREP_MAX_BYTES already). A listing of a directory from offset `base` on (names,
 * and meta as replyDir's: inode, kind, size per name), kept for the kernel's readdirplus at that
 * offset and the ones after it, which are then answered by the fuse threads that take them: a
 * reader walking many small directories (the pk directories of a DynamoDB table), or reading a
 * big one (base > 0: JS answered the first reply), does not wait on the JS thread for each. JS
 * counts the entries' lookups when it prepares; the entries of a prepared listing the kernel
 * never takes (replaced in its slot, a reply it did not take) come back as forget
 * notifications. JS thread.
 */
static napi_value js_prepare_dir(napi_env env, napi_callback_info info) {
  napi_value argv[5], out;
  ekv_mount *m = mount_args(env, info, 5, argv);
  if (!m) return NULL;
  uint64_t dir = (uint64_t)arg_double(env, argv[1]);
  double base = arg_double(env, argv[4]);
  uint32_t n = 0;
  napi_get_array_length(env, argv[2], &n);
  const double *mdata = meta_arg(env, argv[3], n);
  if (!mdata || dir == 0 || n == 0 || !(base >= 0) || base > 4294967295.0 - n) {
    napi_throw_type_error(env, NULL, "ekvfuse.prepareDir: a directory inode, names, a Float64Array of 3 numbers per name, and the first name's offset");
    return NULL;
  }
  int err = 0;
  /* Refused before anything is copied when its attributes alone would pass the bound. */
  pthread_mutex_lock(&m->prep_mu);
  if (m->prep_bytes + (size_t)n * 3 * sizeof(double) > PREP_MAX_BYTES) err = EAGAIN;
  pthread_mutex_unlock(&m->prep_mu);
  if (err) {
    napi_create_int32(env, err, &out);
    return out;
  }
  ekv_prep p;
  memset(&p, 0, sizeof p);
  p.dir = dir;
  p.n = n;
  p.base = (uint32_t)base;
  p.meta = malloc((size_t)n * 3 * sizeof(double));
  size_t cap = 0, used = 0;
  for (uint32_t i = 0; p.meta && i < n && !err; i++) {
    napi_value v;
    size_t nl = 0;
    if (napi_get_element(env, argv[2], i, &v) != napi_ok || napi_get_value_string_utf8(env, v, NULL, 0, &nl) != napi_ok) {
      err = EINVAL;
      break;
    }
    if (used + nl + 1 > cap) {
      size_t c = cap ? cap * 2 : 256;
      while (c < used + nl + 1) c *= 2;
      char *b = realloc(p.names, c);
      if (!b) {
        err = ENOMEM;
        break;
      }
      p.names = b;
      cap = c;
    }
    napi_get_value_string_utf8(env, v, p.names + used, nl + 1, &nl);
    used += nl + 1;
  }
  if (!p.meta || (!p.names && !err)) err = ENOMEM;
  if (!err && (m->loop_done || !m->se)) err = ENOTCONN;
  if (err) {
    prep_free(&p);
    napi_create_int32(env, err, &out);
    return out;
  }
  memcpy(p.meta, mdata, (size_t)n * 3 * sizeof(double));
  p.bytes = cap + (size_t)n * 3 * sizeof(double);
  ekv_prep old;
  memset(&old, 0, sizeof old);
  pthread_mutex_lock(&m->prep_mu);
  ekv_prep *slot = &m->prep[dir % PREP_SLOTS];
  if (m->prep_bytes - slot->bytes + p.bytes > PREP_MAX_BYTES) {
    err = EAGAIN;
  } else {
    old = prep_take(m, slot);
    *slot = p;
    m->prep_bytes += p.bytes;
    if (old.dir) m->prep_dropped++;
  }
  pthread_mutex_unlock(&m->prep_mu);
  if (err) prep_free(&p);
  if (old.dir) prep_drop(m, &old);
  napi_create_int32(env, err, &out);
  return out;
}

/* ---------------------------------------------------------------- expected lookups */

/*
 * A reader that opens files by path in sorted order (sha256sum -c CHECKSUMS, a script going down
 * a list) costs a LOOKUP round trip through JS per file, one after another: the reader waits for
 * each. JS sees the pattern and hands over, ahead, the entries it expects to be looked up next,
 * each with its attributes and (a file small enough) its bytes. A LOOKUP of one is answered here,
 * by the fuse thread, and the bytes are held for the READ that follows (store_hold_locked), so
 * such a file costs no round trip at all while JS renders the next ones.
 *
 * JS counts the kernel's lookup of an entry when it hands it over; an entry dropped unused (the
 * ring wrapped, expectClear, or an entry replaced) is forgotten as the kernel would (a forget
 * notification), as is one whose reply the kernel did not take.
 */

static uint32_t expect_hash(uint64_t parent, const char *name) {
  uint32_t h = 2166136261u;
  for (int k = 0; k < 8; k++) h = (h ^ (uint8_t)(parent >> (8 * k))) * 16777619u;
  for (const unsigned char *c = (const unsigned char *)name; *c; c++) h = (h ^ *c) * 16777619u;
  return h;
}

/* Take slot `i` off its chain (expect_mu held). */
static void expect_unlink(ekv_mount *m, uint32_t i) {
  uint32_t *at = &m->expect_bucket[m->expect[i].hash % EXPECT_BUCKETS];
  while (*at && *at != i + 1) at = &m->expect[*at - 1].next;
  if (*at) *at = m->expect[i].next;
}

/* Empty slot `i` (expect_mu held); with `unused` (dropped, not taken by a lookup), its inode for a forget (else 0). */
static uint64_t expect_free(ekv_mount *m, uint32_t i, int unused) {
  ekv_expect *e = &m->expect[i];
  if (!e->parent) return 0;
  uint64_t ino = unused ? e->ino : 0;
  expect_unlink(m, i);
  if (e->push) {
    m->expect_bytes -= e->push->len;
    free(e->push);
  }
  free(e->name);
  memset(e, 0, sizeof *e);
  if (unused) m->expect_dropped++;
  return ino;
}

/* The slot expecting `name` in `parent`, or -1 (expect_mu held). */
static int64_t expect_find(ekv_mount *m, uint64_t parent, const char *name, uint32_t hash) {
  for (uint32_t at = m->expect_bucket[hash % EXPECT_BUCKETS]; at; at = m->expect[at - 1].next) {
    ekv_expect *e = &m->expect[at - 1];
    if (e->hash == hash && e->parent == parent && strcmp(e->name, name) == 0) return (int64_t)at - 1;
  }
  return -1;
}

/* A LOOKUP of an expected entry, answered here (fuse thread); 1 when answered. */
static int expect_answer(ekv_mount *m, fuse_req_t req, fuse_ino_t parent, const char *name) {
  uint32_t hash = expect_hash(parent, name);
  pthread_mutex_lock(&m->expect_mu);
  int64_t i = expect_find(m, parent, name, hash);
  if (i < 0) {
    pthread_mutex_unlock(&m->expect_mu);
    return 0;
  }
  ekv_expect e = m->expect[i];
  size_t bytes = e.push ? e.push->len : 0;
  m->expect[i].push = NULL; /* handed on below */
  if (e.push) m->expect_bytes -= e.push->len;
  expect_free(m, (uint32_t)i, 0);
  m->expect_answered++;
  pthread_mutex_unlock(&m->expect_mu);
  if (e.push) {
    /* Held before the reply: the reader's READ comes right after it. */
    pthread_mutex_lock(&m->store_mu);
    if (m->store_started && !m->store_stop) store_hold_locked(m, e.push);
    else free(e.push);
    pthread_mutex_unlock(&m->store_mu);
  }
  struct fuse_entry_param ep;
  memset(&ep, 0, sizeof ep);
  ep.ino = e.ino;
  fill_attr(m, &ep.attr, e.ino, e.kind, e.size);
  ep.attr_timeout = m->timeout;
  ep.entry_timeout = m->timeout;
  ekv_req *r = mkreq(OP_EXPECTED, NULL, e.ino, NULL);
  if (r) {
    r->a = bytes;
    post_to(m, r);
  }
  /* Not taken (the request was interrupted meanwhile): the kernel holds no lookup of it. */
  if (fuse_reply_entry(req, &ep) != 0) {
    double ino = (double)e.ino;
    forget_lookups(m, &ino, 1, 1);
  }
  return 1;
}

/*
 * expect(h, parentIno, name, ino, kind, size, data) -> 0, or EAGAIN (the bytes held are at their
 * bound), ENOMEM, ENOTCONN. JS expects the kernel to look up `name` in `parentIno` soon, and has
 * counted that lookup of `ino` (see above). data: the file's whole bytes (a Buffer), or null.
 * An entry already expected under the same name is replaced.
 */
static napi_value js_expect(napi_env env, napi_callback_info info) {
  napi_value argv[7], out;
  ekv_mount *m = mount_args(env, info, 7, argv);
  if (!m) return NULL;
  uint64_t parent = (uint64_t)arg_double(env, argv[1]);
  uint64_t ino = (uint64_t)arg_double(env, argv[3]);
  int kind = (int)arg_double(env, argv[4]);
  double size = arg_double(env, argv[5]);
  void *data = NULL;
  size_t len = 0;
  int has_data = buffer_of(env, argv[6], &data, &len) && len > 0;
  char *name = arg_string(env, argv[2]);
  int err = 0;
  if (!name || !parent || !ino || !name[0]) {
    free(name);
    napi_throw_type_error(env, NULL, "ekvfuse.expect: a parent inode, a name, an inode, a kind, a size and bytes or null");
    return NULL;
  }
  ekv_store *q = NULL;
  if (m->loop_done || !m->se) err = ENOTCONN;
  else if (has_data && (err = store_start(m)) == 0 && !(q = store_rec(NULL, ino, 0, data, len))) err = ENOMEM;
  double forget[2] = {0, 0};
  if (!err) {
    uint32_t hash = expect_hash(parent, name);
    pthread_mutex_lock(&m->expect_mu);
    int64_t old = expect_find(m, parent, name, hash);
    if (old >= 0) forget[0] = (double)expect_free(m, (uint32_t)old, 1);
    if (q && m->expect_bytes + len > EXPECT_MAX_BYTES) {
      err = EAGAIN;
    } else {
      uint32_t i = m->expect_ring;
      m->expect_ring = (i + 1) % EXPECT_SLOTS;
      forget[1] = (double)expect_free(m, i, 1);
      ekv_expect *e = &m->expect[i];
      e->parent = parent;
      e->ino = ino;
      e->kind = kind;
      e->size = size;
      e->hash = hash;
      e->name = name;
      e->push = q;
      e->next = m->expect_bucket[hash % EXPECT_BUCKETS];
      m->expect_bucket[hash % EXPECT_BUCKETS] = i + 1;
      if (q) m->expect_bytes += len;
      name = NULL;
      q = NULL;
    }
    pthread_mutex_unlock(&m->expect_mu);
  }
  free(name);
  free(q);
  forget_lookups(m, forget, 2, 1);
  napi_create_int32(env, err, &out);
  return out;
}

/* expectClear(h) -> entries dropped: every expected entry goes, its lookup forgotten. */
static napi_value js_expect_clear(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  ekv_mount *m = mount_args(env, info, 1, argv);
  if (!m) return NULL;
  double *inos = malloc(EXPECT_SLOTS * sizeof *inos);
  size_t n = 0;
  pthread_mutex_lock(&m->expect_mu);
  for (uint32_t i = 0; i < EXPECT_SLOTS; i++) {
    uint64_t ino = expect_free(m, i, 1);
    if (ino && inos) inos[n++] = (double)ino;
  }
  pthread_mutex_unlock(&m->expect_mu);
  if (inos) forget_lookups(m, inos, n, 1);
  free(inos);
  napi_create_double(env, (double)n, &out);
  return out;
}

/* sessionStats(h) -> [answered, dropped, retried, readsFromPushes, expectAnswered, expectDropped]: prepared listings the kernel
 * took, those it never did, pushes tried again after the kernel refused them (store_retry_later),
 * and READs answered from pushes not written yet (store_answer_read). */
static napi_value js_session_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, v;
  ekv_mount *m = mount_args(env, info, 1, argv);
  if (!m) return NULL;
  pthread_mutex_lock(&m->prep_mu);
  double a = (double)m->prep_answered, d = (double)m->prep_dropped;
  pthread_mutex_unlock(&m->prep_mu);
  pthread_mutex_lock(&m->store_mu);
  double r = (double)m->store_retried, f = (double)m->store_read_answers;
  pthread_mutex_unlock(&m->store_mu);
  pthread_mutex_lock(&m->expect_mu);
  double ea = (double)m->expect_answered, ed = (double)m->expect_dropped;
  pthread_mutex_unlock(&m->expect_mu);
  CHECK(env, napi_create_array_with_length(env, 6, &out));
  napi_create_double(env, a, &v);
  napi_set_element(env, out, 0, v);
  napi_create_double(env, d, &v);
  napi_set_element(env, out, 1, v);
  napi_create_double(env, r, &v);
  napi_set_element(env, out, 2, v);
  napi_create_double(env, f, &v);
  napi_set_element(env, out, 3, v);
  napi_create_double(env, ea, &v);
  napi_set_element(env, out, 4, v);
  napi_create_double(env, ed, &v);
  napi_set_element(env, out, 5, v);
  return out;
}

/*
 * store(h, ino, offset, data, parkDir) -> 0 (queued) or a positive errno. Pushes bytes into
 * the kernel's page cache for an inode the kernel already knows (fuse_lowlevel_notify_store),
 * so later reads of them need no READ round trip. The tree is immutable, so stored pages
 * never go stale. EAGAIN: the queue is full; ENOTCONN: the session has ended.
 *
 * parkDir (not 0): a push for a file of the listing reply about to be sent for that
 * directory. It is held until the kernel's next readdir of the directory, which comes only
 * once the kernel has taken the reply in (its inodes exist, so the push cannot miss them),
 * and the readdir at the end of the listing is answered after it. Parked before the reply is
 * sent, so no readdir can overtake it. Parking for another directory in the same slot drops
 * the older pushes.
 */
static napi_value js_store(napi_env env, napi_callback_info info) {
  napi_value argv[5], out;
  ekv_mount *m = mount_args(env, info, 5, argv);
  if (!m) return NULL;
  void *data = NULL;
  size_t len = 0;
  if (buffer_arg(env, argv[3], &data, &len, "ekvfuse.store: data must be a Buffer") != 0) return NULL;
  uint64_t ino = (uint64_t)arg_double(env, argv[1]);
  off_t off = (off_t)arg_double(env, argv[2]);
  double where = arg_double(env, argv[4]);
  uint64_t dir = where > 0 ? (uint64_t)where : 0;
  int err = dir ? store_park(m, dir, ino, off, data, len) : store_enqueue(m, NULL, ino, off, data, len, where < 0);
  napi_create_int32(env, err, &out);
  return out;
}

/*
 * replyBufAfterStores(h, id, data, ino): answer a READ of inode `ino` once the pushes queued so
 * far are in the page cache, so the reader finds the next files there. At once instead while a
 * push of `ino` itself is queued or waiting to be tried again (see store_enqueue): the push
 * thread never waits on a page whose answer is behind it.
 */
static napi_value js_reply_buf_after_stores(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  ekv_mount *m = NULL;
  fuse_req_t req = take(env, info, 4, argv, &m);
  if (!req) return NULL;
  void *data = NULL;
  size_t len = 0;
  if (buffer_arg(env, argv[2], &data, &len, "ekvfuse.replyBufAfterStores: data must be a Buffer") != 0) {
    fuse_reply_err(req, EIO);
    return NULL;
  }
  uint64_t ino = (uint64_t)arg_double(env, argv[3]);
  if (store_enqueue(m, req, ino, 0, data, len, 0) != 0) fuse_reply_buf(req, data, len);
  return NULL;
}

/* Signals that mean the caller is going away (HUP, INT, QUIT, KILL, TERM): bits of a
 * /proc/<tid>/status mask. A fatal signal also leaves SIGKILL pending on every thread. */
#define LEAVING_SIGNALS ((1ull << (SIGHUP - 1)) | (1ull << (SIGINT - 1)) | (1ull << (SIGQUIT - 1)) | (1ull << (SIGKILL - 1)) | (1ull << (SIGTERM - 1)))

/* Whether thread `tid` has one of LEAVING_SIGNALS pending; 0 when it cannot be told. */
static int caller_leaving(pid_t tid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  int leaving = 0;
  while (!leaving && fgets(line, sizeof line, f)) {
    if (strncmp(line, "SigPnd:", 7) != 0 && strncmp(line, "ShdPnd:", 7) != 0) continue;
    unsigned long long mask = strtoull(line + 7, NULL, 16);
    leaving = (mask & LEAVING_SIGNALS) != 0;
  }
  fclose(f);
  return leaving;
}

/*
 * interrupt(h, id) -> -1 the request is answered already; 0 still unanswered, its caller not
 * leaving; 1 answered EINTR now. The kernel interrupts a request when its caller gets any
 * signal while waiting, and it sends INTERRUPT once per request. A caller that is leaving
 * (Ctrl-C, kill, timeout) gets EINTR at once, so it is not held in an uninterruptible wait
 * until a long render ends. Other signals (SIGCHLD, SIGWINCH, SIGURG, timers) do not turn
 * a read or stat into an error: JS asks again later while the request is unanswered.
 */
static napi_value js_interrupt(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  ekv_mount *m = mount_args(env, info, 2, argv);
  if (!m) return NULL;
  double id = arg_double(env, argv[1]);
  int rc = -1;
  fuse_req_t req = slot_peek(m, id);
  if (req) {
    rc = 0;
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    if (ctx && ctx->pid > 0 && caller_leaving(ctx->pid)) {
      slot_take(m, id);
      fuse_reply_err(req, EINTR);
      rc = 1;
    }
  }
  napi_create_int32(env, rc, &out);
  return out;
}

/* pending(h) -> requests handed to JS and not yet answered. */
static napi_value js_pending(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  ekv_mount *m = mount_args(env, info, 1, argv);
  if (!m) return NULL;
  napi_create_uint32(env, m->pending, &out);
  return out;
}

/* Give freed malloc memory back to the kernel (the heap governor calls this after a collection):
 * Buffers freed by V8 leave holes in glibc's heap that RSS keeps counting otherwise. Returns
 * whether anything was released. */
static napi_value js_trim_malloc(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_get_boolean(env, malloc_trim(0) != 0, &out);
  return out;
}

/*
 * reexec(path, argv): execv, so a foreground mount can restart itself (same pid, stdio and
 * environment) with node flags that only take effect when Node starts. Returns only when
 * execv fails: the errno.
 */
static napi_value js_reexec(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value out;
  uint32_t n = 0;
  int err = EINVAL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == 2 && napi_get_array_length(env, argv[1], &n) == napi_ok) {
    char *path = arg_string(env, argv[0]);
    char **args = calloc((size_t)n + 1, sizeof *args);
    bool ok = path && args;
    for (uint32_t i = 0; ok && i < n; i++) {
      napi_value v;
      ok = napi_get_element(env, argv[1], i, &v) == napi_ok && (args[i] = arg_string(env, v)) != NULL;
    }
    if (ok) {
      /* libuv marks the stdio descriptors close-on-exec; the new image writes to the same ones. */
      for (int fd = 0; fd <= 2; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && (fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
      }
      execv(path, args);
      err = errno;
    } else {
      err = ENOMEM;
    }
    for (uint32_t i = 0; args && i < n; i++) free(args[i]);
    free(args);
    free(path);
  }
  napi_create_int32(env, err, &out);
  return out;
}

/*
 * sha256 of a big file for CHECKSUMS, in libuv's thread pool. OpenSSL's one-shot SHA256 is
 * Node's own (the node binary exports OpenSSL's symbols for addons); looked up once at run
 * time, so a Node without it only loses this (sha256 returns false and JS hashes another way).
 * The Buffer is read in place by the pool thread: a Buffer of that size is never on V8's heap
 * (its memory does not move), nobody writes to it (a file's bytes are immutable), and it is
 * referenced until the job's callback, so it is not freed while it is read. WebCrypto, the
 * other way, copies the file first.
 */
typedef unsigned char *(*sha256_fn_t)(const unsigned char *d, size_t n, unsigned char *md);
static sha256_fn_t sha256_fn;
static int sha256_looked_up;

typedef struct {
  napi_async_work work;
  napi_ref buf;
  napi_ref cb;
  const unsigned char *data;
  size_t len;
  unsigned char out[32];
} sha_job;

static void sha_job_free(napi_env env, sha_job *j) {
  if (j->work) napi_delete_async_work(env, j->work);
  if (j->buf) napi_delete_reference(env, j->buf);
  if (j->cb) napi_delete_reference(env, j->cb);
  free(j);
}

static void sha_execute(napi_env env, void *arg) {
  (void)env;
  sha_job *j = arg;
  sha256_fn(j->data, j->len, j->out);
}

static void sha_complete(napi_env env, napi_status status, void *arg) {
  sha_job *j = arg;
  napi_value cb, undef, argv[2];
  if (napi_get_reference_value(env, j->cb, &cb) == napi_ok && cb) {
    napi_get_undefined(env, &undef);
    if (status == napi_ok && napi_create_buffer_copy(env, 32, j->out, NULL, &argv[1]) == napi_ok) {
      napi_get_null(env, &argv[0]);
    } else {
      napi_create_string_utf8(env, status == napi_ok ? "sha256: no memory for the digest" : "sha256: the job did not run", NAPI_AUTO_LENGTH, &argv[0]);
      napi_get_null(env, &argv[1]);
    }
    napi_call_function(env, undef, cb, 2, argv, NULL);
  }
  sha_job_free(env, j);
}

/* sha256(buf, cb) -> whether the job was queued; cb(err, digest) later (32 bytes). */
static napi_value js_sha256(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out, name;
  bool queued = false;
  void *p = NULL;
  size_t len = 0;
  if (!sha256_looked_up) {
    sha256_looked_up = 1;
    sha256_fn = (sha256_fn_t)dlsym(RTLD_DEFAULT, "SHA256");
  }
  sha_job *j = NULL;
  if (!sha256_fn || napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_buffer_info(env, argv[0], &p, &len) != napi_ok) goto done;
  j = calloc(1, sizeof *j);
  if (!j) goto done;
  j->data = p;
  j->len = len;
  if (napi_create_reference(env, argv[0], 1, &j->buf) != napi_ok || napi_create_reference(env, argv[1], 1, &j->cb) != napi_ok) goto fail;
  napi_create_string_utf8(env, "ekvfuse.sha256", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, sha_execute, sha_complete, j, &j->work) != napi_ok) goto fail;
  if (napi_queue_async_work(env, j->work) != napi_ok) goto fail;
  queued = true;
  goto done;
fail:
  sha_job_free(env, j);
done:
  napi_get_boolean(env, queued, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmount", NULL, js_unmount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyErr", NULL, js_reply_err, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyBuf", NULL, js_reply_buf, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyDir", NULL, js_reply_dir, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pending", NULL, js_pending, NULL, NULL, NULL, napi_enumerable, NULL},
      {"interrupt", NULL, js_interrupt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"trimMalloc", NULL, js_trim_malloc, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reexec", NULL, js_reexec, NULL, NULL, NULL, napi_enumerable, NULL},
      {"store", NULL, js_store, NULL, NULL, NULL, napi_enumerable, NULL},
      {"prepareDir", NULL, js_prepare_dir, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sessionStats", NULL, js_session_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"expect", NULL, js_expect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"expectClear", NULL, js_expect_clear, NULL, NULL, NULL, napi_enumerable, NULL},
      {"replyBufAfterStores", NULL, js_reply_buf_after_stores, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sha256", NULL, js_sha256, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(ekvfuse, init)
