/* rendezvous.c: the agent's part of a multi-node job's start barrier
 * (docs/multi-node.md, "The start barrier"): the address this node offers
 * its ranks, and the workspace's rendezvous handed to a waiting runner as
 * the attempt's `rendezvous.json`. */
#include "agent/agent.h"

#include "common/attempt.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* host and port of a workspace URL (http://, https://, ssh://user@); 0 when
 * it has none. */
static int url_host(const char *url, char *host, size_t hsize, char *port,
                    size_t psize)
{
	const char *p = strstr(url, "://"), *end, *at;
	size_t n;

	if (p == NULL)
		return -1;
	p += 3;
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	if (at != NULL)
		p = at + 1;
	snprintf(port, psize, "%s",
	         strncmp(url, "https", 5) == 0 ? "443"
	         : strncmp(url, "ssh", 3) == 0 ? "22"
	                                       : "80");
	if (*p == '[') { /* [v6]:port */
		const char *close = memchr(p, ']', (size_t)(end - p));
		if (close == NULL)
			return -1;
		n = (size_t)(close - p - 1);
		if (n >= hsize)
			return -1;
		memcpy(host, p + 1, n);
		host[n] = '\0';
		p = close + 1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		const char *hend = colon ? colon : end;
		n = (size_t)(hend - p);
		if (n == 0 || n >= hsize)
			return -1;
		memcpy(host, p, n);
		host[n] = '\0';
		p = hend;
	}
	if (*p == ':' && end - p > 1 && (size_t)(end - p) <= psize) {
		memcpy(port, p + 1, (size_t)(end - p - 1));
		port[end - p - 1] = '\0';
	}
	return 0;
}

char *rdv_node_address(const struct agent *a)
{
	const char *url = a->conf.workspace;
	char host[256], port[16], out[INET6_ADDRSTRLEN];
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1;
	char *res = NULL;

	if (a->conf.node_address != NULL && a->conf.node_address[0] != '\0')
		return xstrdup(a->conf.node_address);
	if (url == NULL ||
	    url_host(url, host, sizeof(host), port, sizeof(port)) < 0)
		return NULL;
	if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL)
		return NULL;
	/* a UDP connect sends nothing: it only picks the route and with it
	 * the source address */
	fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		const void *addr =
		    ss.ss_family == AF_INET
		        ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
		        : (const void *)&((struct sockaddr_in6 *)&ss)
		              ->sin6_addr;
		if (inet_ntop(ss.ss_family, addr, out, sizeof(out)) != NULL)
			res = xstrdup(out);
	}
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return res;
}

void rdv_apply(struct agent *a, json_t *item)
{
	json_t *job = json_object_get(item, "job");
	int64_t attempt = json_integer_value(json_object_get(item, "attempt"));
	struct err e = {0};
	struct att *t;
	char id[64], *path, *text;

	if (json_is_integer(job))
		snprintf(id, sizeof(id), "%lld",
		         (long long)json_integer_value(job));
	else
		return;
	t = att_find(a, id, attempt);
	if (t == NULL || t->state != ATT_RUNNING || t->dir == NULL)
		return;
	path = attempt_path(t->dir, ATTEMPT_RENDEZVOUS);
	if (access(path, F_OK) == 0) { /* every reply repeats it */
		free(path);
		return;
	}
	text = json_dumps(item, JSON_COMPACT);
	if (text == NULL ||
	    file_replace(path, text, strlen(text), 0600, &e) < 0) {
		log_error("job=%s attempt=%lld rendezvous: %s", t->job,
		          (long long)attempt, e.msg);
	} else {
		log_info("job=%s attempt=%lld rendezvous: every rank is ready",
		         t->job, (long long)attempt);
		if (t->runner_pid > 0 && !t->runner_gone && t->pidfd >= 0)
			kill(t->runner_pid, SIGUSR1);
	}
	free(text);
	free(path);
}
