/* Unit tests of the one Docker Engine /version probe (docker/docker.c:
 * docker_version_probe), which the agent's capacity and doctor and
 * docker_open share, against a fake engine on a unix socket that answers
 * one request with a canned reply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "docker/docker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct engine {
	char dir[32], path[64];
	int fd;
	const char *reply; /* the whole HTTP response */
	char request[512]; /* the request line it got */
	pthread_t thread;
};

static void *engine_main(void *arg)
{
	struct engine *g = arg;
	char buf[4096];
	ssize_t n, got = 0;
	int c = accept(g->fd, NULL, NULL);

	if (c < 0)
		return NULL;
	/* Read the request head, then answer and close. */
	while (got < (ssize_t)sizeof(buf) - 1 &&
	       (n = read(c, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0) {
		got += n;
		buf[got] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			break;
	}
	buf[got] = '\0';
	snprintf(g->request, sizeof(g->request), "%.*s",
	         (int)strcspn(buf, "\r\n"), buf);
	if (write(c, g->reply, strlen(g->reply)) < 0)
		perror("write");
	close(c);
	return NULL;
}

static void engine_start(struct engine *g, const char *reply)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	memset(g, 0, sizeof(*g));
	snprintf(g->dir, sizeof(g->dir), "/tmp/tether-dv-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	snprintf(g->path, sizeof(g->path), "%s/docker.sock", g->dir);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", g->path);
	g->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(g->fd >= 0);
	assert_int_equal(bind(g->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(g->fd, 1), 0);
	g->reply = reply;
	assert_int_equal(pthread_create(&g->thread, NULL, engine_main, g), 0);
}

static void engine_stop(struct engine *g)
{
	pthread_join(g->thread, NULL);
	close(g->fd);
	unlink(g->path);
	rmdir(g->dir);
}

static char *reply(const char *status, const char *body)
{
	char *r = NULL;

	assert_true(
	    asprintf(&r,
	             "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
	             "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
	             status, strlen(body), body) > 0);
	return r;
}

static void engine_answers(void **state)
{
	char *r = reply("200 OK", "{\"Version\":\"20.10.24\",\"ApiVersion\":"
	                          "\"1.41\",\"MinAPIVersion\":\"1.12\"}");
	struct engine g;
	struct docker_version v;
	struct err e = {0};

	engine_start(&g, r);
	assert_int_equal(docker_version_probe(g.path, 5000, &v, &e), 0);
	engine_stop(&g);
	/* Unversioned: the engine answers whatever it speaks. */
	assert_string_equal(g.request, "GET /version HTTP/1.1");
	assert_int_equal(v.status, 200);
	assert_string_equal(v.api, "1.41");
	assert_string_equal(v.engine, "20.10.24");
	free(r);
}

static void not_an_engine(void **state)
{
	char *r = reply("404 Not Found", "{\"message\":\"page not found\"}");
	char *plain = reply("200 OK", "hello");
	struct engine g;
	struct docker_version v;
	struct err e = {0};

	engine_start(&g, r);
	assert_int_equal(docker_version_probe(g.path, 5000, &v, &e),
	                 TERR_NOTFOUND);
	engine_stop(&g);
	assert_int_equal(v.status, 404);
	assert_string_equal(e.msg, "docker /version: HTTP 404: page not found");
	/* 200 without a version: answered, but no API version. */
	engine_start(&g, plain);
	assert_int_equal(docker_version_probe(g.path, 5000, &v, &e), 0);
	engine_stop(&g);
	assert_int_equal(v.status, 200);
	assert_string_equal(v.api, "");
	free(r);
	free(plain);
}

static void nothing_answers(void **state)
{
	struct docker_version v;
	struct err e = {0};
	struct docker *d = NULL;

	assert_int_equal(
	    docker_version_probe("/nonexistent/docker.sock", 2000, &v, &e),
	    TERR_NET);
	assert_int_equal(v.status, 0);
	assert_true(v.error[0] != '\0');
	assert_non_null(strstr(e.msg, "socket /nonexistent/docker.sock"));
	assert_true(docker_open("/nonexistent/docker.sock", &d, &e) < 0);
	assert_null(d);
	assert_non_null(strstr(e.msg,
	                       "docker engine at "
	                       "/nonexistent/docker.sock not reachable"));
}

static void open_refuses_old_engine(void **state)
{
	char *r = reply("200 OK", "{\"Version\":\"18.09\",\"ApiVersion\":"
	                          "\"1.39\"}");
	struct engine g;
	struct docker *d = NULL;
	struct err e = {0};

	engine_start(&g, r);
	assert_int_equal(docker_open(g.path, &d, &e), TERR_UNSUPP);
	engine_stop(&g);
	assert_null(d);
	assert_non_null(strstr(e.msg, "older than 1.40"));
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(engine_answers),
	    cmocka_unit_test(not_an_engine),
	    cmocka_unit_test(nothing_answers),
	    cmocka_unit_test(open_refuses_old_engine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
