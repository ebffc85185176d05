/* ssh-remote.c: a blocking SSH session for `tether attach`: one libssh2
 * session (host key verified against known_hosts before authentication, by
 * ssh-tunnel-conn.c), switched to blocking mode with a timeout, that runs
 * commands (exec channels) and copies files (SFTP). */
#include "transport/ssh-remote.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/util.h"
#include "transport/ssh-tunnel-int.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh2_sftp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXEC_OUT_MAX (1 << 20)

struct ssh_remote {
	struct ssh_conn *c;
	LIBSSH2_SFTP *sftp;
	char name[300];
};

int ssh_remote_open(const struct ssh_tunnel_opts *o, int timeout_ms,
                    struct ssh_remote **out, struct err *e)
{
	struct ssh_remote *r = xcalloc(1, sizeof(*r));
	int rc;

	if ((rc = ssh_conn_open(o, &r->c, e)) < 0) {
		free(r);
		return rc;
	}
	libssh2_session_set_timeout(r->c->session, timeout_ms);
	libssh2_session_set_blocking(r->c->session, 1);
	snprintf(r->name, sizeof(r->name), "%s@%s:%d", r->c->target.user,
	         r->c->target.host, r->c->target.port);
	*out = r;
	return 0;
}

void ssh_remote_close(struct ssh_remote *r)
{
	if (r == NULL)
		return;
	if (r->sftp != NULL)
		libssh2_sftp_shutdown(r->sftp);
	ssh_conn_close(r->c);
	free(r);
}

const char *ssh_remote_name(const struct ssh_remote *r)
{
	return r->name;
}

static int session_err(struct ssh_remote *r, int code, const char *what,
                       struct err *e)
{
	return err_set(e, code, "%s: %s: %s", r->name, what,
	               ssh_conn_errmsg(r->c->session));
}

/* Read the channel to its end into out (capped; the rest is dropped). */
static int exec_drain(struct ssh_remote *r, LIBSSH2_CHANNEL *ch,
                      struct buf *out, struct err *e)
{
	char chunk[16384];
	ssize_t n;

	while ((n = libssh2_channel_read(ch, chunk, sizeof(chunk))) > 0) {
		size_t room = out->max > out->len ? out->max - out->len : 0;
		if (room > 0)
			buf_append(out, chunk,
			           (size_t)n < room ? (size_t)n : room, NULL);
	}
	if (n < 0)
		return session_err(r, TERR_NET, "reading the command's output",
		                   e);
	return 0;
}

int ssh_remote_exec(struct ssh_remote *r, const char *cmd, struct buf *out,
                    int *status, struct err *e)
{
	LIBSSH2_CHANNEL *ch;
	char *sig = NULL;
	int rc;

	ch = libssh2_channel_open_session(r->c->session);
	if (ch == NULL)
		return session_err(r, TERR_NET, "open a session channel", e);
	libssh2_channel_handle_extended_data2(
	    ch, LIBSSH2_CHANNEL_EXTENDED_DATA_MERGE);
	if (libssh2_channel_exec(ch, cmd) != 0) {
		rc = session_err(r, TERR_NET, "run a command", e);
		goto out;
	}
	if ((rc = exec_drain(r, ch, out, e)) < 0)
		goto out;
	libssh2_channel_close(ch);
	libssh2_channel_wait_closed(ch);
	*status = libssh2_channel_get_exit_status(ch);
	libssh2_channel_get_exit_signal(ch, &sig, NULL, NULL, NULL, NULL, NULL);
	if (sig != NULL) {
		*status = -1;
		libssh2_free(r->c->session, sig);
	}
out:
	libssh2_channel_free(ch);
	return rc;
}

static int sftp_ready(struct ssh_remote *r, struct err *e)
{
	if (r->sftp == NULL)
		r->sftp = libssh2_sftp_init(r->c->session);
	if (r->sftp == NULL)
		return session_err(r, TERR_NET,
		                   "start SFTP (is the sftp subsystem enabled "
		                   "in sshd_config?)",
		                   e);
	return 0;
}

/* Write all of buf to the SFTP handle. */
static int sftp_write_all(struct ssh_remote *r, LIBSSH2_SFTP_HANDLE *h,
                          const char *buf, size_t len, const char *path,
                          struct err *e)
{
	ssize_t n;

	while (len > 0) {
		n = libssh2_sftp_write(h, buf, len);
		if (n < 0)
			return err_set(e, TERR_NET,
			               "%s: write %s: SFTP error %lu", r->name,
			               path, libssh2_sftp_last_error(r->sftp));
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int ssh_remote_put(struct ssh_remote *r, const char *local,
                   const char *remote_path, long mode, struct err *e)
{
	LIBSSH2_SFTP_HANDLE *h = NULL;
	char chunk[65536];
	ssize_t n;
	int fd, rc;

	if ((rc = sftp_ready(r, e)) < 0)
		return rc;
	fd = open(local, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, TERR_IO, "%s", local);
	h = libssh2_sftp_open(
	    r->sftp, remote_path,
	    LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC, mode);
	if (h == NULL) {
		rc = err_set(e, TERR_NET, "%s: create %s: SFTP error %lu",
		             r->name, remote_path,
		             libssh2_sftp_last_error(r->sftp));
		goto out;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if ((rc = sftp_write_all(r, h, chunk, (size_t)n, remote_path,
		                         e)) < 0)
			goto out;
	if (n < 0)
		rc = err_sys(e, TERR_IO, "read %s", local);
out:
	if (h != NULL && libssh2_sftp_close(h) != 0 && rc == 0)
		rc = err_set(e, TERR_NET, "%s: close %s: SFTP error %lu",
		             r->name, remote_path,
		             libssh2_sftp_last_error(r->sftp));
	close(fd);
	return rc;
}
