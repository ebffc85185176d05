/* Unit tests of agent/metrics.c and metrics-http.c: the text format and the
 * loopback responder, driven the way the agent's loop drives it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "agent/metrics.h"
#include "common/buf.h"
#include "common/err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char *render(void)
{
	struct buf b;
	struct err e = {0};

	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(&b, &e), 0);
	return buf_steal(&b);
}

static void test_render_counters_and_gauges(void **state)
{
	char *t;

	metrics_clear(M_ATTEMPTS_FINISHED);
	metrics_add(M_ATTEMPTS_FINISHED, "succeeded", 1);
	metrics_add(M_ATTEMPTS_FINISHED, "succeeded", 2);
	metrics_add(M_ATTEMPTS_FINISHED, "oom", 1);
	metrics_set(M_JOBS, "running", 2);
	metrics_set(M_JOBS, "running", 1);
	metrics_add(M_LOG_BYTES_SHIPPED, NULL, 1234);
	assert_true(metrics_get(M_ATTEMPTS_FINISHED, "succeeded") == 3);
	t = render();
	assert_non_null(strstr(t, "# TYPE tether_attempts_finished_total "
	                          "counter\n"));
	assert_non_null(strstr(
	    t, "tether_attempts_finished_total{reason=\"succeeded\"} 3\n"));
	assert_non_null(
	    strstr(t, "tether_attempts_finished_total{reason=\"oom\"} 1\n"));
	assert_non_null(strstr(t, "tether_jobs{state=\"running\"} 1\n"));
	assert_non_null(strstr(t, "tether_log_bytes_shipped_total 1234\n"));
	/* an unset family without a label still shows 0 */
	assert_non_null(strstr(t, "tether_queue_length 0\n"));
	free(t);
}

static void test_render_histogram_and_escape(void **state)
{
	char *t;

	metrics_clear(M_WORKSPACE_LATENCY);
	metrics_observe(M_WORKSPACE_LATENCY, "log", 0.003);
	metrics_observe(M_WORKSPACE_LATENCY, "log", 0.2);
	metrics_observe(M_WORKSPACE_LATENCY, "log", 500);
	metrics_set(M_AGENT_INFO, "0.1\"x\\", 1);
	t = render();
	assert_non_null(strstr(t, "tether_workspace_request_seconds_bucket{"
	                          "call=\"log\",le=\"0.005\"} 1\n"));
	assert_non_null(strstr(t, "tether_workspace_request_seconds_bucket{"
	                          "call=\"log\",le=\"0.25\"} 2\n"));
	assert_non_null(strstr(t, "tether_workspace_request_seconds_bucket{"
	                          "call=\"log\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(
	    t, "tether_workspace_request_seconds_count{call=\"log\"} 3\n"));
	assert_non_null(
	    strstr(t, "tether_agent_info{version=\"0.1\\\"x\\\\\"} 1\n"));
	free(t);
}

/* The loop stand-in: the fds the responder asked to watch. */
static int watched[16];

static int watch(void *ctx, int fd, bool on)
{
	for (int i = 0; i < 16; i++) {
		if (on && watched[i] < 0) {
			watched[i] = fd;
			return 0;
		}
		if (!on && watched[i] == fd) {
			watched[i] = -1;
			return 0;
		}
	}
	return on ? -1 : 0;
}

/* Dispatch every watched fd once, like one loop turn. */
static void loop_turn(void)
{
	int fds[16];

	memcpy(fds, watched, sizeof(fds));
	for (int i = 0; i < 16; i++)
		if (fds[i] >= 0)
			metrics_handle(fds[i]);
}

static char *scrape(const char *request)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	static char reply[65536];
	size_t len = 0;
	ssize_t n;

	sa.sin_port = htons((uint16_t)metrics_port());
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	loop_turn(); /* accept */
	/* the request in two pieces: the responder waits for the rest */
	assert_true(write(fd, request, 5) == 5);
	loop_turn();
	assert_true(write(fd, request + 5, strlen(request) - 5) > 0);
	loop_turn();
	while ((n = read(fd, reply + len, sizeof(reply) - 1 - len)) > 0)
		len += (size_t)n;
	reply[len] = 0;
	close(fd);
	return reply;
}

static void test_http_scrape(void **state)
{
	struct metrics_hooks h = {.ctx = NULL, .watch = watch};
	struct err e = {0};
	char *r;

	memset(watched, -1, sizeof(watched));
	assert_int_equal(metrics_open("127.0.0.1:0", &h, &e), 0);
	assert_true(metrics_fd() >= 0);
	assert_true(metrics_port() > 0);
	metrics_set(M_QUEUE_LENGTH, NULL, 7);
	r = scrape("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "text/plain; version=0.0.4"));
	assert_non_null(strstr(r, "\ntether_queue_length 7\n"));
	r = scrape("GET /other HTTP/1.1\r\n\r\n");
	assert_non_null(strstr(r, "404"));
	metrics_close();
	assert_int_equal(metrics_fd(), -1);
	for (int i = 0; i < 16; i++)
		assert_int_equal(watched[i], -1);
}

static void test_listen_refused(void **state)
{
	struct metrics_hooks h = {.ctx = NULL, .watch = watch};
	struct err e = {0};

	assert_int_equal(metrics_open(NULL, &h, &e), 0);
	assert_int_equal(metrics_fd(), -1);
	assert_int_equal(metrics_open("0.0.0.0:0", &h, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "only loopback"));
	assert_int_equal(metrics_open("9464", &h, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "HOST:PORT"));
	assert_int_equal(metrics_fd(), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render_counters_and_gauges),
	    cmocka_unit_test(test_render_histogram_and_escape),
	    cmocka_unit_test(test_http_scrape),
	    cmocka_unit_test(test_listen_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
