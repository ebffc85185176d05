/* doctor-net.c: doctor checks that talk to a peer: the Docker Engine on its
 * socket, the workspace (reachable, TLS chain trusted with the configured
 * CA) and the agent's credential (present, 0600, accepted). */
#include "agent/doctor.h"

#include "common/attempt.h"
#include "common/err.h"
#include "common/util.h"
#include "docker/docker.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLY_MAX (64 * 1024)

struct probe {
	char body[REPLY_MAX];
	size_t len;
	long status;
	long long date; /* Date header, 0 if none */
	CURLcode rc;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct probe *pr = arg;
	size_t len = size * n, room = sizeof(pr->body) - 1 - pr->len;

	if (len > room)
		len = room;
	memcpy(pr->body + pr->len, p, len);
	pr->len += len;
	pr->body[pr->len] = 0;
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct probe *pr = arg;
	size_t len = size * n;

	if (len > 5 && strncasecmp(p, "Date:", 5) == 0) {
		char line[128];

		snprintf(line, sizeof(line), "%.*s", (int)(len - 5), p + 5);
		line[strcspn(line, "\r\n")] = 0;
		time_t t = curl_getdate(line, NULL);
		if (t > 0)
			pr->date = (long long)t;
	}
	return len;
}

/* One blocking GET (doctor is a command, not the daemon). */
static void probe_get(struct probe *pr, const char *url, const char *unix_path,
                      const char *ca_file, const char *bearer)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdr = NULL;
	char *auth = NULL;

	memset(pr, 0, sizeof(*pr));
	if (c == NULL) {
		pr->rc = CURLE_OUT_OF_MEMORY;
		return;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, pr->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, pr);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, pr);
	if (unix_path)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, unix_path);
	if (ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	hdr = curl_slist_append(hdr, "Tether-Protocol: 1");
	if (bearer) {
		auth = xasprintf("Authorization: Bearer %s", bearer);
		hdr = curl_slist_append(hdr, auth);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	pr->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &pr->status);
	curl_slist_free_all(hdr);
	freezero_str(auth);
	curl_easy_cleanup(c);
}

static const char *probe_error(const struct probe *pr)
{
	return pr->errbuf[0] ? pr->errbuf : curl_easy_strerror(pr->rc);
}

void doctor_check_docker(struct doctor *d)
{
	const char *sock = d->conf.docker_socket ? d->conf.docker_socket
	                                         : ATTEMPT_DEF_DOCKER_SOCKET;
	bool wanted = d->conf.default_launcher &&
	              strcmp(d->conf.default_launcher, "docker") == 0;
	enum doctor_status bad = wanted ? DOC_FAIL : DOC_WARN;
	struct docker_version v;

	if (docker_version_probe(sock, 15000, &v, NULL) < 0 && v.status == 0)
		doctor_add(
		    d, "docker", bad,
		    "start dockerd (systemctl start docker) or set "
		    "docker_socket in agent.conf",
		    "Docker Engine not reachable at %s (%s): docker jobs "
		    "will fail",
		    sock, v.error);
	else if (v.status != 200 || v.api[0] == '\0')
		doctor_add(d, "docker", bad,
		           "check that docker_socket is the Docker Engine's",
		           "%s answered HTTP %ld without an API version", sock,
		           v.status);
	else
		doctor_add(d, "docker", DOC_OK, NULL,
		           "Docker Engine %s, API %s at %s",
		           v.engine[0] ? v.engine : NULL, v.api, sock);
}

/* Read the secret from state_dir/credentials; false (and a line) if absent
 * or unreadable. */
static bool load_credential(struct doctor *d)
{
	char *path = xasprintf("%s/credentials", d->conf.state_dir);
	const char *fix = "tether-agent run --workspace URL --token T "
	                  "(or install.sh --workspace URL --token T)";
	json_t *j = NULL;
	struct stat st;
	bool ok = false;

	if (stat(path, &st) < 0) {
		if (d->conf.token || d->conf.token_file)
			doctor_add(
			    d, "credential", DOC_WARN, NULL,
			    "not registered yet: the agent registers with "
			    "the token in agent.conf on its first start");
		else
			doctor_add(d, "credential", DOC_FAIL, fix,
			           "%s: %s: this node is not registered", path,
			           strerror(errno));
		goto out;
	}
	if ((st.st_mode & 077) != 0)
		doctor_add(d, "credential", DOC_FAIL,
		           "chmod 0600 STATE_DIR/credentials",
		           "%s is mode %04o: the secret is readable by others",
		           path, (unsigned)(st.st_mode & 07777));
	j = json_load_file(path, 0, NULL);
	if (json_string_value(json_object_get(j, "secret")) == NULL) {
		doctor_add(d, "credential", DOC_FAIL, fix,
		           "%s has no secret (not JSON with \"secret\")", path);
		goto out;
	}
	d->secret = xstrdup(json_string_value(json_object_get(j, "secret")));
	ok = (st.st_mode & 077) == 0;
out:
	json_decref(j);
	free(path);
	return ok;
}

static void report_tls_error(struct doctor *d, const struct probe *pr)
{
	const char *ca = d->conf.ca_file;

	if (pr->rc == CURLE_PEER_FAILED_VERIFICATION)
		doctor_add(d, "workspace", DOC_FAIL,
		           ca ? "set ca_file to the CA that signed the "
		                "workspace's certificate"
		              : "set ca_file to the CA that signed the "
		                "workspace's certificate (or add it to the "
		                "system store: update-ca-certificates)",
		           "%s: TLS certificate not trusted with %s: %s",
		           d->conf.workspace, ca ? ca : "the system CA store",
		           probe_error(pr));
	else
		doctor_add(d, "workspace", DOC_FAIL,
		           "set ca_file to a readable PEM file of CA "
		           "certificates",
		           "%s: cannot use the CA file %s: %s",
		           d->conf.workspace, ca ? ca : "(system store)",
		           probe_error(pr));
}

void doctor_report_credential(struct doctor *d, long status)
{
	if (status == 401)
		doctor_add(d, "credential", DOC_FAIL,
		           "the agent was revoked or the secret is stale: "
		           "start it once with --re-register (and a new token)",
		           "rejected by the workspace (HTTP 401)");
	else if (status >= 500 || status == 426)
		doctor_add(d, "credential", DOC_WARN, NULL,
		           "not checked: the workspace answered HTTP %ld",
		           status);
	else
		doctor_add(d, "credential", DOC_OK, NULL,
		           "accepted by the workspace");
}

/* https:// and http://: GET a snapshot that cannot exist with the
 * agent's secret: 404 (or 403) means reachable and accepted, 401 means the
 * credential is not; nothing changes on the workspace. */
static void check_http_workspace(struct doctor *d, bool have_secret)
{
	char *url =
	    xasprintf("%s/api/v1/snapshots/doctor-probe", d->conf.workspace);
	struct probe *pr = xcalloc(1, sizeof(*pr));

	probe_get(pr, url, NULL, d->conf.ca_file,
	          have_secret ? d->secret : NULL);
	d->ws_date = pr->date;
	if (pr->rc == CURLE_PEER_FAILED_VERIFICATION ||
	    pr->rc == CURLE_SSL_CACERT_BADFILE ||
	    pr->rc == CURLE_SSL_CERTPROBLEM)
		report_tls_error(d, pr);
	else if (pr->rc != CURLE_OK)
		doctor_add(d, "workspace", DOC_FAIL,
		           "check the URL, DNS, the firewall and that the "
		           "workspace runs",
		           "%s not reachable: %s", d->conf.workspace,
		           probe_error(pr));
	else if (pr->status == 426)
		doctor_add(d, "workspace", DOC_FAIL,
		           "upgrade the agent or the workspace to a common "
		           "protocol version",
		           "%s does not speak protocol 1: %.200s",
		           d->conf.workspace, pr->body);
	else
		doctor_add(d, "workspace", DOC_OK, NULL, "%s reachable%s",
		           d->conf.workspace,
		           strncmp(d->conf.workspace, "https:", 6) == 0
		               ? ", TLS certificate verified"
		               : "");
	if (have_secret && pr->rc == CURLE_OK)
		doctor_report_credential(d, pr->status);
	free(pr);
	free(url);
}

void doctor_check_workspace(struct doctor *d)
{
	const char *ws = d->conf.workspace;
	bool have_secret;

	if (ws == NULL) {
		doctor_add(d, "workspace", DOC_FAIL,
		           "set workspace = URL in agent.conf (install.sh "
		           "--workspace URL --token T does)",
		           "no workspace configured");
		return;
	}
	have_secret = load_credential(d);
	if (strncmp(ws, "https://", 8) == 0 || strncmp(ws, "http://", 7) == 0)
		check_http_workspace(d, have_secret);
	else if (strncmp(ws, "ssh://", 6) == 0)
		doctor_check_ssh_workspace(d, have_secret);
	else
		doctor_add(d, "workspace", DOC_FAIL,
		           "use https://, ssh:// or http://127.0.0.1",
		           "%s: unknown URL scheme", ws);
}
