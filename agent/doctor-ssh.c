/* doctor-ssh.c: the workspace check for ssh:// workspaces: the SSH server
 * reachable, its host key known (ssh_known_hosts or ssh_fingerprint), the
 * agent's key accepted, the workspace answering through a direct-tcpip
 * channel, and the credential accepted there (the same probe as https). */
#include "agent/doctor.h"

#include "common/err.h"
#include "common/util.h"
#include "transport/ssh-tunnel.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REPLY_MAX 8192

/* The fix for a failed ssh_tunnel_open, from what went wrong. */
static const char *ssh_fix(const struct err *e)
{
	if (strstr(e->msg, "host key") || strstr(e->msg, "HOST KEY"))
		return "add the server's key to ssh_known_hosts (ssh-keyscan "
		       "-p PORT HOST >> FILE) or pin ssh_fingerprint; a "
		       "changed key means a reinstalled server or an attack";
	if (e->code == TERR_AUTH || e->code == TERR_INVAL)
		return "on the workspace host, check that the SSH user's "
		       "account is not locked (useradd --system locks it: "
		       "usermod -p '*' USER), that AllowUsers/AllowGroups "
		       "admit it, that the key type is accepted and that "
		       "ssh_key's public key is in its authorized_keys; here, "
		       "check ssh_key and ssh_key_passphrase_file "
		       "(docs/ssh.md)";
	return "check the URL, DNS, the firewall and that sshd runs on the "
	       "workspace host";
}

/* Send one GET over the stream and read the reply head (bounded). */
static int http_over(int fd, const char *secret, char *reply, size_t len)
{
	char *req = xasprintf("GET /api/v1/snapshots/doctor-probe HTTP/1.0\r\n"
	                      "Host: 127.0.0.1\r\nTether-Protocol: 1\r\n"
	                      "%s%s%s\r\n",
	                      secret ? "Authorization: Bearer " : "",
	                      secret ? secret : "", secret ? "\r\n" : "");
	size_t off = 0, n = strlen(req);
	int64_t deadline = now_mono_ms() + 10000;
	int r = 0;

	while (off < n && r == 0) {
		ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno != EINTR)
			r = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	freezero_str(req);
	for (off = 0; r == 0 && off + 1 < len;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_mono_ms();
		ssize_t got;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		got = read(fd, reply + off, len - 1 - off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		off += (size_t)got;
	}
	reply[off] = 0;
	return r;
}

/* Status code and Date of a reply head; 0 when it is not HTTP. */
static long parse_reply(const char *reply, long long *date)
{
	const char *d = strcasestr(reply, "\r\nDate:");
	long status = 0;

	if (sscanf(reply, "HTTP/1.%*d %ld", &status) != 1)
		return 0;
	if (d) {
		char line[128];
		time_t t;

		snprintf(line, sizeof(line), "%s", d + 7);
		line[strcspn(line, "\r\n")] = 0;
		t = curl_getdate(line, NULL);
		if (t > 0)
			*date = (long long)t;
	}
	return status;
}

static void ssh_probe(struct doctor *d, struct ssh_tunnel *t, bool have_secret)
{
	const struct agent_conf *c = &d->conf;
	char reply[REPLY_MAX];
	struct err e = {0};
	long status;
	int fd = -1, r;

	if (ssh_tunnel_connect(t, &fd, &e) < 0) {
		doctor_add(d, "workspace", DOC_FAIL,
		           "set ssh_remote_port to the workspace's plain_port "
		           "on the SSH host, and allow TCP forwarding in sshd",
		           "%s: SSH works but no channel to 127.0.0.1:%lld: %s",
		           c->workspace, (long long)c->ssh_remote_port, e.msg);
		return;
	}
	r = http_over(fd, have_secret ? d->secret : NULL, reply, sizeof(reply));
	close(fd);
	status = r == 0 ? parse_reply(reply, &d->ws_date) : 0;
	if (status == 0) {
		doctor_add(
		    d, "workspace", DOC_FAIL,
		    "set ssh_remote_port to the workspace's plain_port",
		    "%s: no HTTP reply through the tunnel to port %lld%s%s",
		    c->workspace, (long long)c->ssh_remote_port, r ? ": " : "",
		    r ? strerror(-r) : "");
		return;
	}
	doctor_add(d, "workspace", status == 426 ? DOC_FAIL : DOC_OK,
	           status == 426 ? "upgrade the agent or the workspace" : NULL,
	           "%s reachable: host key known, key accepted, workspace on "
	           "port %lld answers (HTTP %ld)",
	           c->workspace, (long long)c->ssh_remote_port, status);
	if (have_secret)
		doctor_report_credential(d, status);
}

void doctor_check_ssh_workspace(struct doctor *d, bool have_secret)
{
	const struct agent_conf *c = &d->conf;
	struct ssh_tunnel_opts o = {.url = c->workspace,
	                            .known_hosts = c->ssh_known_hosts,
	                            .pinned_fingerprint = c->ssh_fingerprint,
	                            .key_file = c->ssh_key,
	                            .passphrase_file =
	                                c->ssh_key_passphrase_file,
	                            .remote_host = "127.0.0.1",
	                            .remote_port = (int)c->ssh_remote_port,
	                            .keepalive_s = -1,
	                            .connect_timeout_ms = 5000};
	struct ssh_tunnel *t = NULL;
	struct err e = {0};

	if (ssh_tunnel_open(&o, &t, &e) < 0) {
		doctor_add(d, "workspace", DOC_FAIL, ssh_fix(&e), "%s: %s",
		           c->workspace, e.msg);
		return;
	}
	ssh_probe(d, t, have_secret);
	ssh_tunnel_close(t);
}
