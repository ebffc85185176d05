/* ssh-tunnel-conn.c: one outbound SSH connection: parse the ssh:// URL,
 * connect with a deadline, handshake, verify the host key and only then
 * authenticate with a key file.  Used by the tunnel and by `tether attach`.
 *
 * Everything runs with the session in non-blocking mode, each step retried
 * with ssh_conn_wait() until the common deadline, so a server that stalls
 * cannot hang the caller past connect_timeout_ms. */
#include "transport/ssh-tunnel-int.h"

#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 15000
#define PASSPHRASE_MAX             4096
/* libssh2 before 1.11 signs RSA user keys with ssh-rsa (SHA-1) only. */
#define RSA_SHA1_ONLY (LIBSSH2_VERSION_NUM < 0x010b00)

static pthread_once_t ssh2_once = PTHREAD_ONCE_INIT;
static int ssh2_init_rc;

static void ssh2_init(void)
{
	ssh2_init_rc = libssh2_init(0);
}

void ssh_target_free(struct ssh_target *t)
{
	if (t == NULL)
		return;
	free(t->user);
	free(t->host);
	t->user = t->host = NULL;
}

/* Split "host[:port]" or "[v6][:port]" into t->host and t->port. */
static int parse_hostport(const char *url, const char *s, size_t n,
                          struct ssh_target *t, struct err *e)
{
	const char *colon = NULL, *hend = s + n;
	int64_t port = 22;

	if (n > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (rb == NULL)
			return err_set(e, TERR_INVAL, "ssh URL '%s': no ']'",
			               url);
		if (rb + 1 < s + n && rb[1] != ':')
			return err_set(e, TERR_INVAL,
			               "ssh URL '%s': junk after ']'", url);
		colon = rb + 1 < s + n ? rb + 1 : NULL;
		t->host = strndup(s + 1, (size_t)(rb - s - 1));
	} else {
		colon = memchr(s, ':', n);
		t->host = strndup(s, colon ? (size_t)(colon - s) : n);
	}
	if (t->host == NULL || t->host[0] == '\0')
		return err_set(e, TERR_INVAL, "ssh URL '%s': no host", url);
	if (colon != NULL) {
		char pbuf[16];
		size_t pl = (size_t)(hend - colon - 1);
		if (pl == 0 || pl >= sizeof(pbuf))
			return err_set(e, TERR_INVAL, "ssh URL '%s': bad port",
			               url);
		memcpy(pbuf, colon + 1, pl);
		pbuf[pl] = '\0';
		if (parse_i64(pbuf, 1, 65535, &port, e) < 0)
			return err_wrap(e, "ssh URL '%s': port", url);
	}
	t->port = (int)port;
	return 0;
}

int ssh_url_parse(const char *url, struct ssh_target *out, struct err *e)
{
	struct ssh_target t = {0};
	const char *p, *at, *end;
	int r;

	if (url == NULL || strncmp(url, "ssh://", 6) != 0)
		return err_set(e, TERR_INVAL,
		               "ssh URL '%s': expected ssh://user@host[:port]",
		               url ? url : "");
	p = url + 6;
	end = p + strcspn(p, "/?#");
	if (*end != '\0' && strcmp(end, "/") != 0)
		return err_set(
		    e, TERR_INVAL,
		    "ssh URL '%s': no path, query or fragment allowed", url);
	at = memchr(p, '@', (size_t)(end - p));
	if (at == NULL || at == p)
		return err_set(e, TERR_INVAL,
		               "ssh URL '%s': no user (ssh://user@host[:port])",
		               url);
	t.user = strndup(p, (size_t)(at - p));
	if (t.user == NULL || strpbrk(t.user, ":@ ") != NULL) {
		r = err_set(e, TERR_INVAL, "ssh URL '%s': bad user name", url);
		goto out;
	}
	r = parse_hostport(url, at + 1, (size_t)(end - at - 1), &t, e);
	if (r < 0)
		goto out;
	*out = t;
	memset(&t, 0, sizeof(t));
out:
	ssh_target_free(&t);
	return r;
}

const char *ssh_conn_errmsg(LIBSSH2_SESSION *s)
{
	char *msg = NULL;

	if (s == NULL)
		return "";
	libssh2_session_last_error(s, &msg, NULL, 0);
	return msg ? msg : "";
}

/* Wait for fd to be ready for events until deadline; TERR_TIMEOUT then. */
static int wait_fd(int fd, short events, int64_t deadline_ms, struct err *e)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int64_t left;
	int n;

	for (;;) {
		left = deadline_ms - now_mono_ms();
		if (left <= 0)
			return err_set(e, TERR_TIMEOUT, "timed out");
		n = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return err_sys(e, TERR_IO, "poll");
	}
}

int ssh_conn_wait(struct ssh_conn *c, int64_t deadline_ms, struct err *e)
{
	int dir = libssh2_session_block_directions(c->session);
	short ev = 0;

	if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
		ev |= POLLIN;
	if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		ev |= POLLOUT;
	return wait_fd(c->sock, ev ? ev : POLLIN, deadline_ms, e);
}

/* Non-blocking connect to one address, finished before deadline. */
static int tcp_try(const struct addrinfo *ai, int64_t deadline_ms,
                   struct err *e)
{
	int fd, soerr = 0;
	socklen_t sl = sizeof(soerr);

	fd = socket(ai->ai_family,
	            ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
	            ai->ai_protocol);
	if (fd < 0)
		return err_sys(e, TERR_NET, "socket");
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err_sys(e, TERR_NET, "connect");
			goto fail;
		}
		if (wait_fd(fd, POLLOUT, deadline_ms, e) < 0) {
			err_wrap(e, "connect");
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 ||
		    soerr != 0) {
			errno = soerr ? soerr : errno;
			err_sys(e, TERR_NET, "connect");
			goto fail;
		}
	}
	/* libssh2 writes whole packets: none should wait for an ACK */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	return fd;
fail:
	close(fd);
	return e ? e->code : TERR_NET;
}

static int tcp_connect(const struct ssh_target *t, int64_t deadline_ms,
                       struct err *e)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	char port[8];
	int fd = TERR_NET, gr;

	snprintf(port, sizeof(port), "%d", t->port);
	gr = getaddrinfo(t->host, port, &hints, &res);
	if (gr != 0)
		return err_set(e, TERR_NET, "resolve %s: %s", t->host,
		               gai_strerror(gr));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = tcp_try(ai, deadline_ms, e);
		if (fd >= 0 || fd == TERR_TIMEOUT)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

/* Read a key passphrase: the file's first line. */
static int read_passphrase(const char *path, char **out, struct err *e)
{
	size_t len;
	int r;

	*out = NULL;
	if (path == NULL)
		return 0;
	r = file_read_all(path, PASSPHRASE_MAX, out, &len, e);
	if (r < 0)
		return err_wrap(e, "key passphrase file");
	(*out)[strcspn(*out, "\r\n")] = '\0';
	return 0;
}

static int handshake(struct ssh_conn *c, const struct ssh_tunnel_opts *o,
                     int64_t deadline_ms, struct err *e)
{
	char *prefs = NULL;
	int r;

	r = ssh_hostkey_prefs(o->known_hosts, &c->target, &prefs, e);
	if (r < 0)
		return r;
	if (prefs != NULL && libssh2_session_method_pref(
	                         c->session, LIBSSH2_METHOD_HOSTKEY, prefs) < 0)
		log_warn("host key preference '%s' not accepted by libssh2",
		         prefs);
	free(prefs);
	while ((r = libssh2_session_handshake(c->session, c->sock)) ==
	       LIBSSH2_ERROR_EAGAIN) {
		if (ssh_conn_wait(c, deadline_ms, e) < 0)
			return err_wrap(e, "SSH handshake");
	}
	if (r == LIBSSH2_ERROR_KEX_FAILURE)
		return err_set(
		    e, TERR_NET,
		    "SSH handshake: %s (no key exchange or host key "
		    "algorithm in common; this libssh2 %s knows "
		    "ssh-ed25519, ecdsa-sha2-* and, for RSA, only "
		    "ssh-rsa, which OpenSSH 8.8+ servers with only an "
		    "RSA host key no longer offer: give the server an "
		    "ed25519 host key)",
		    ssh_conn_errmsg(c->session), LIBSSH2_VERSION);
	if (r < 0)
		return err_set(e, TERR_NET, "SSH handshake: %s",
		               ssh_conn_errmsg(c->session));
	return 0;
}

/* True when the key file looks like an RSA key (PEM header or .pub). */
static bool key_is_rsa(const char *key_file)
{
	char *pub = xasprintf("%s.pub", key_file), *text = NULL;
	size_t len;
	bool rsa = false;

	if (file_read_all(key_file, 64 * 1024, &text, &len, NULL) == 0)
		rsa = strstr(text, "BEGIN RSA PRIVATE KEY") != NULL;
	freezero(text, text ? len : 0);
	text = NULL;
	if (!rsa && file_read_all(pub, 64 * 1024, &text, &len, NULL) == 0)
		rsa = strncmp(text, "ssh-rsa ", 8) == 0;
	free(text);
	free(pub);
	return rsa;
}

static int authenticate(struct ssh_conn *c, const struct ssh_tunnel_opts *o,
                        int64_t deadline_ms, struct err *e)
{
	char *pass = NULL;
	int r;

	if (o->key_file == NULL || access(o->key_file, R_OK) < 0)
		return err_sys(e, TERR_INVAL, "private key '%s'",
		               o->key_file ? o->key_file : "(none given)");
	if ((r = read_passphrase(o->passphrase_file, &pass, e)) < 0)
		return r;
	while ((r = libssh2_userauth_publickey_fromfile_ex(
	            c->session, c->target.user,
	            (unsigned int)strlen(c->target.user), NULL, o->key_file,
	            pass)) == LIBSSH2_ERROR_EAGAIN) {
		if (ssh_conn_wait(c, deadline_ms, e) < 0) {
			r = err_wrap(e, "authentication");
			goto out;
		}
	}
	if (r == LIBSSH2_ERROR_FILE || r == LIBSSH2_ERROR_METHOD_NOT_SUPPORTED)
		r = err_set(
		    e, TERR_AUTH,
		    "cannot use private key '%s' (%s): wrong or missing "
		    "passphrase, or a key type this libssh2 cannot read",
		    o->key_file, ssh_conn_errmsg(c->session));
	else if (r < 0)
		r = err_set(
		    e, TERR_AUTH,
		    "authentication refused: the server did not accept key "
		    "'%s' for user '%s' (%s). Likely causes, most common "
		    "first: the account is locked (a user made with 'useradd "
		    "--system' has a locked password, which sshd with 'UsePAM "
		    "no' refuses even for keys: 'usermod -p \"*\" %s' unlocks "
		    "it); sshd_config's AllowUsers, AllowGroups or DenyUsers "
		    "leave the user out; the key type is not in the server's "
		    "PubkeyAcceptedAlgorithms%s; the public key is not in the "
		    "user's authorized_keys (owned by the user, not "
		    "group-writable). The server's auth log names the reason "
		    "(docs/ssh.md)",
		    o->key_file, c->target.user, ssh_conn_errmsg(c->session),
		    c->target.user,
		    RSA_SHA1_ONLY && key_is_rsa(o->key_file)
		        ? " (this libssh2 signs RSA keys with ssh-rsa, SHA-1, "
		          "which OpenSSH 8.8+ refuses unless sshd_config has "
		          "'PubkeyAcceptedAlgorithms +ssh-rsa': prefer an "
		          "ed25519 key)"
		        : "");
out:
	freezero_str(pass);
	return r;
}

static int conn_setup(struct ssh_conn *c, const struct ssh_tunnel_opts *o,
                      struct err *e)
{
	int64_t timeout = o->connect_timeout_ms > 0
	                      ? o->connect_timeout_ms
	                      : DEFAULT_CONNECT_TIMEOUT_MS;
	int64_t deadline = now_mono_ms() + timeout;
	int r;

	c->sock = tcp_connect(&c->target, deadline, e);
	if (c->sock < 0)
		return c->sock;
	c->session = libssh2_session_init();
	if (c->session == NULL)
		return err_set(e, TERR_NOMEM, "libssh2_session_init failed");
	libssh2_session_set_blocking(c->session, 0);
	if ((r = handshake(c, o, deadline, e)) < 0)
		return r;
	/* The host key is checked before any credential leaves this host. */
	r = ssh_hostkey_verify(c->session, o, &c->target, c->fingerprint, e);
	if (r < 0)
		return r;
	return authenticate(c, o, deadline, e);
}

int ssh_conn_open(const struct ssh_tunnel_opts *o, struct ssh_conn **out,
                  struct err *e)
{
	struct ssh_conn *c = xcalloc(1, sizeof(*c));
	int r;

	c->sock = -1;
	pthread_once(&ssh2_once, ssh2_init);
	if (ssh2_init_rc != 0) {
		r = err_set(e, TERR_FAIL, "libssh2_init failed");
		goto out;
	}
	if ((r = ssh_url_parse(o->url, &c->target, e)) < 0)
		goto out;
	r = conn_setup(c, o, e);
	if (r < 0) {
		err_wrap(e, "ssh %s@%s:%d", c->target.user, c->target.host,
		         c->target.port);
		goto out;
	}
	log_info("ssh %s@%s:%d: connected, host key %s", c->target.user,
	         c->target.host, c->target.port, c->fingerprint);
	*out = c;
	c = NULL;
out:
	ssh_conn_close(c);
	return r;
}

void ssh_conn_close(struct ssh_conn *c)
{
	if (c == NULL)
		return;
	if (c->session != NULL) {
		/* Bounded goodbye: blocking mode with a short timeout. */
		libssh2_session_set_timeout(c->session, 1000);
		libssh2_session_set_blocking(c->session, 1);
		libssh2_session_disconnect(c->session, "tether: closing");
		libssh2_session_free(c->session);
	}
	if (c->sock >= 0)
		close(c->sock);
	ssh_target_free(&c->target);
	free(c);
}
