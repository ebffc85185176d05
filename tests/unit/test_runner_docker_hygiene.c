/* docker-hygiene.c against the real engine: orphan containers of a state
 * directory are removed (known attempts and other state dirs are kept),
 * and tether-env images are pruned.  Skipped (77) without an engine or
 * without the test base image (tests/bb/harness/baseimage.py makes it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/attempt.h"
#include "common/err.h"
#include "common/util.h"
#include "runner/docker/docker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BASE "tether-test-base:bookworm"
static char test_state[64];

static const char *sock = ATTEMPT_DEF_DOCKER_SOCKET;

/* Create (and maybe start) a container labelled like a job's. */
static char *make_container(struct docker *d, const char *state,
                            const char *job, const char *attempt, bool run)
{
	json_t *body = json_pack(
	    "{s:s, s:[s,s], s:{s:s, s:s, s:s}, s:{s:b}}", "Image", BASE, "Cmd",
	    "sleep", "60", "Labels", "tether.job", job, "tether.attempt",
	    attempt, "tether.state_dir", state, "HostConfig", "Init", true);
	json_t *reply = NULL;
	struct err e = {0};
	char *id, *path;

	assert_int_equal(
	    docker_call(d, "POST", "/containers/create", body, &reply, &e), 0);
	id = xstrdup(json_string_value(json_object_get(reply, "Id")));
	if (run) {
		path = xasprintf("/containers/%s/start", id);
		assert_int_equal(docker_call(d, "POST", path, NULL, NULL, &e),
		                 0);
		free(path);
	}
	json_decref(body);
	json_decref(reply);
	return id;
}

static bool exists(struct docker *d, const char *id)
{
	char *path = xasprintf("/containers/%s/json", id);
	int rc = docker_call(d, "GET", path, NULL, NULL, NULL);

	free(path);
	return rc == 0;
}

static bool known_attempt(void *arg, const char *job, int64_t attempt)
{
	(*(int *)arg)++;
	return strcmp(job, "known") == 0 && attempt == 1;
}

static void test_orphans(void **state)
{
	struct docker *d = NULL;
	struct err e = {0};
	int calls = 0, removed = -1;
	char *orphan, *stopped, *known, *other, *path;

	assert_int_equal(docker_open(sock, &d, &e), 0);
	orphan = make_container(d, test_state, "gone", "3", true);
	stopped = make_container(d, test_state, "gone", "4", false);
	known = make_container(d, test_state, "known", "1", true);
	path = xasprintf("%s-other", test_state);
	other = make_container(d, path, "gone", "3", true);
	free(path);
	assert_int_equal(docker_remove_orphans(sock, test_state, known_attempt,
	                                       &calls, &removed, &e),
	                 0);
	assert_int_equal(removed, 2);
	assert_int_equal(calls, 3);
	assert_false(exists(d, orphan));
	assert_false(exists(d, stopped));
	assert_true(exists(d, known));
	assert_true(exists(d, other));
	/* idempotent */
	assert_int_equal(docker_remove_orphans(sock, test_state, known_attempt,
	                                       &calls, &removed, &e),
	                 0);
	assert_int_equal(removed, 0);
	for (int i = 0; i < 2; i++) {
		path = xasprintf("/containers/%s?force=1", i ? known : other);
		docker_call(d, "DELETE", path, NULL, NULL, &e);
		free(path);
	}
	free(orphan), free(stopped), free(known), free(other);
	docker_close(d);
}

/* Keep every key but arg (other tests' images stay). */
static bool keep_others(void *arg, const char *key)
{
	return strcmp(key, (const char *)arg) != 0;
}

static void test_env_images(void **state)
{
	const char *k1 = "1111111111111111111111111111111111111111111111111111"
	                 "111111111111";
	const char *k2 = "2222222222222222222222222222222222222222222222222222"
	                 "222222222222";
	struct docker *d = NULL;
	struct err e = {0};
	char *ref;
	int removed = -1;

	assert_int_equal(docker_open(sock, &d, &e), 0);
	assert_int_equal(docker_image_tag(d, BASE, DOCKER_ENV_REPO, k1, &e), 0);
	assert_int_equal(docker_image_tag(d, BASE, DOCKER_ENV_REPO, k2, &e), 0);
	assert_int_equal(docker_env_images_prune(sock, keep_others, (void *)k1,
	                                         &removed, &e),
	                 0);
	assert_true(removed >= 1);
	ref = xasprintf(DOCKER_ENV_REPO ":%s", k1);
	assert_int_equal(docker_image_inspect(d, ref, NULL, &e), TERR_NOTFOUND);
	free(ref);
	ref = xasprintf(DOCKER_ENV_REPO ":%s", k2);
	assert_int_equal(docker_image_inspect(d, ref, NULL, &e), 0);
	assert_int_equal(docker_env_image_remove(sock, k2, &e), 0);
	assert_int_equal(docker_image_inspect(d, ref, NULL, &e), TERR_NOTFOUND);
	assert_int_equal(docker_image_inspect(d, BASE, NULL, &e), 0);
	free(ref);
	docker_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_orphans),
	    cmocka_unit_test(test_env_images),
	};
	struct docker *d = NULL;
	struct err e = {0};

	snprintf(test_state, sizeof(test_state), "/var/tmp/tether-hygiene-%d",
	         (int)getpid());
	if (getenv("TETHER_TEST_DOCKER_SOCKET"))
		sock = getenv("TETHER_TEST_DOCKER_SOCKET");
	if (docker_open(sock, &d, &e) < 0) {
		printf("skipped: no docker engine: %s\n", e.msg);
		return 77;
	}
	if (docker_image_inspect(d, BASE, NULL, &e) < 0) {
		printf("skipped: no %s (run the docker bb tests once)\n", BASE);
		docker_close(d);
		return 77;
	}
	docker_close(d);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
