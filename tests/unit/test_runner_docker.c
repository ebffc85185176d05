/* Unit tests of the Docker Engine API client's pure parts: stream frame
 * demultiplexing (split anywhere), version negotiation, progress lines,
 * .dockerignore matching, registry auth and image references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "common/util.h"
#include "common/jobspec.h"
#include "runner/docker/docker.h"
#include "runner/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sink {
	struct buf out[3];
	int frames;
};

static int on_frame(void *arg, int stream, const char *data, size_t len)
{
	struct sink *s = arg;

	assert_true(stream == 1 || stream == 2);
	s->frames++;
	return buf_append(&s->out[stream], data, len, NULL);
}

static size_t frame(char *dst, int stream, const char *data, size_t len)
{
	dst[0] = (char)stream;
	dst[1] = dst[2] = dst[3] = 0;
	dst[4] = (char)(len >> 24), dst[5] = (char)(len >> 16);
	dst[6] = (char)(len >> 8), dst[7] = (char)len;
	memcpy(dst + 8, data, len);
	return len + 8;
}

/* A stream of frames fed in every chunk size from 1 to its length. */
static void test_demux_split(void **state)
{
	char wire[4096], big[1000];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3); /* binary, includes NUL bytes */
	n += frame(wire + n, 1, "hello ", 6);
	n += frame(wire + n, 2, "err\n", 4);
	n += frame(wire + n, 1, big, sizeof(big));
	n += frame(wire + n, 1, "", 0);
	n += frame(wire + n, 1, "end", 3);
	for (size_t chunk = 1; chunk <= n; chunk++) {
		struct docker_demux dm;
		struct sink s = {0};

		for (int k = 0; k < 3; k++)
			buf_init(&s.out[k], 1 << 20);
		docker_demux_init(&dm);
		for (size_t off = 0; off < n; off += chunk)
			assert_int_equal(
			    docker_demux_feed(&dm, wire + off,
			                      off + chunk > n ? n - off : chunk,
			                      on_frame, &s),
			    0);
		assert_int_equal(s.out[1].len, 6 + sizeof(big) + 3);
		assert_memory_equal(s.out[1].data, "hello ", 6);
		assert_memory_equal(s.out[1].data + 6, big, sizeof(big));
		assert_memory_equal(s.out[1].data + 6 + sizeof(big), "end", 3);
		assert_int_equal(s.out[2].len, 4);
		assert_memory_equal(s.out[2].data, "err\n", 4);
		assert_int_equal(dm.hdr_len, 0);
		assert_int_equal(dm.left, 0);
		for (int k = 0; k < 3; k++)
			buf_free(&s.out[k]);
	}
}

static void test_version_pick(void **state)
{
	char v[16];
	struct err e = {0};

	assert_int_equal(docker_version_pick("1.41", "1.41", "1.40", v, &e), 0);
	assert_string_equal(v, "1.41");
	assert_int_equal(docker_version_pick("1.50", "1.41", "1.40", v, &e), 0);
	assert_string_equal(v, "1.41");
	assert_int_equal(docker_version_pick("2.0", "1.41", "1.40", v, &e), 0);
	assert_string_equal(v, "1.41");
	assert_int_equal(docker_version_pick("1.40", "1.41", "1.40", v, &e), 0);
	assert_string_equal(v, "1.40");
	assert_int_equal(docker_version_pick("1.39", "1.41", "1.40", v, &e),
	                 TERR_UNSUPP);
	assert_non_null(strstr(e.msg, "1.39"));
	assert_int_equal(docker_version_pick("x", "1.41", "1.40", v, &e),
	                 TERR_PROTO);
	assert_int_equal(docker_version_pick(NULL, "1.41", "1.40", v, &e),
	                 TERR_PROTO);
}

static int count_line(void *arg, json_t *obj, struct err *e)
{
	int *n = arg;

	assert_true(json_is_object(obj));
	(*n)++;
	return 0;
}

static void test_lines(void **state)
{
	const char *text =
	    "{\"stream\":\"a\"}\r\n\n{\"status\":\"b\"}\n{\"x\":1}";
	struct docker_lines l;
	struct err e = {0};
	int n = 0;

	docker_lines_init(&l, count_line, &n, &e);
	for (size_t i = 0; i < strlen(text); i++)
		assert_int_equal(docker_lines_feed(&l, text + i, 1), 0);
	assert_int_equal(n, 2);
	docker_lines_free(&l); /* the unterminated last line */
	assert_int_equal(n, 3);
	docker_lines_init(&l, count_line, &n, &e);
	assert_int_equal(docker_lines_feed(&l, "not json\n", 9), TERR_PROTO);
	docker_lines_free(&l);
}

static void test_ignore(void **state)
{
	char *pats[] = {"*.log",     "build",  "docs/**/*.tmp",
	                "!keep.log", "sub/?x", "[ab]z",
	                NULL};

	assert_true(docker_ignore_match(pats, "a.log"));
	assert_false(docker_ignore_match(pats, "keep.log"));
	assert_false(docker_ignore_match(pats, "dir/a.log")); /* * is 1 level */
	assert_true(docker_ignore_match(pats, "build"));
	assert_true(docker_ignore_match(pats, "build/x/y.c")); /* parent */
	assert_true(docker_ignore_match(pats, "docs/a.tmp"));
	assert_true(docker_ignore_match(pats, "docs/a/b/c.tmp"));
	assert_false(docker_ignore_match(pats, "docs/a/b/c.txt"));
	assert_true(docker_ignore_match(pats, "sub/ax"));
	assert_false(docker_ignore_match(pats, "sub/abx"));
	assert_true(docker_ignore_match(pats, "bz"));
	assert_false(docker_ignore_match(pats, "cz"));
	assert_false(docker_ignore_match(pats, "src/main.c"));
}

static void test_ignore_load_and_context(void **state)
{
	char dir[] = "/tmp/tdockerXXXXXX", *p, hex1[65], hex2[65];
	char **pats = NULL;
	struct err e = {0};
	struct sha256_ctx *h;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	p = xasprintf("%s/.dockerignore", dir);
	f = fopen(p, "w");
	fputs("# comment\n/secret.txt\n./out/\n  \n!out/keep\nDockerfile\n", f);
	fclose(f);
	free(p);
	assert_int_equal(docker_ignore_load(dir, &pats, &e), 0);
	assert_string_equal(pats[0], "secret.txt");
	assert_string_equal(pats[1], "out");
	assert_string_equal(pats[2], "!out/keep");
	assert_string_equal(pats[3], "Dockerfile");
	assert_null(pats[4]);
	runner_strv_free(pats);

	p = xasprintf("%s/Dockerfile", dir);
	f = fopen(p, "w");
	fputs("FROM scratch\n", f);
	fclose(f);
	free(p);
	h = sha256_new();
	assert_int_equal(docker_context_tar(dir, "Dockerfile", NULL, h, &e), 0);
	sha256_final(h, hex1);
	/* An ignored file does not change the key; a kept one does. */
	p = xasprintf("%s/secret.txt", dir);
	f = fopen(p, "w");
	fputs("x", f);
	fclose(f);
	free(p);
	h = sha256_new();
	f = tmpfile();
	assert_int_equal(docker_context_tar(dir, "Dockerfile", f, h, &e), 0);
	sha256_final(h, hex2);
	assert_string_equal(hex1, hex2);
	assert_true(ftell(f) > 0);
	fclose(f);
	p = xasprintf("%s/train.py", dir);
	f = fopen(p, "w");
	fputs("print(1)", f);
	fclose(f);
	free(p);
	h = sha256_new();
	assert_int_equal(docker_context_tar(dir, "Dockerfile", NULL, h, &e), 0);
	sha256_final(h, hex2);
	assert_string_not_equal(hex1, hex2);
	assert_int_equal(rm_rf(dir, &e), 0);
}

static void test_refs_and_auth(void **state)
{
	char *repo, *tag, *a;

	docker_image_split("127.0.0.1:5000/base:bookworm", &repo, &tag);
	assert_string_equal(repo, "127.0.0.1:5000/base");
	assert_string_equal(tag, "bookworm");
	free(repo), free(tag);
	docker_image_split("127.0.0.1:5000/base", &repo, &tag);
	assert_string_equal(repo, "127.0.0.1:5000/base");
	assert_string_equal(tag, "latest");
	free(repo), free(tag);
	docker_image_split("debian@sha256:abc", &repo, &tag);
	assert_string_equal(repo, "debian");
	assert_string_equal(tag, "sha256:abc");
	free(repo), free(tag);
	a = docker_image_registry("localhost/x");
	assert_string_equal(a, "localhost");
	free(a);
	a = docker_image_registry("library/debian");
	assert_string_equal(a, "https://index.docker.io/v1/");
	free(a);
	assert_null(docker_registry_auth("x", "no-colon"));
	a = docker_registry_auth("127.0.0.1:5000/b", "u:p?>");
	/* base64url of {"username":"u","password":"p?>",...}: no + or / */
	assert_null(strpbrk(a, "+/"));
	assert_int_equal(strlen(a) % 4, 0);
	free(a);
	a = docker_urlencode("{\"a\":[\"b c\"]}");
	assert_string_equal(a, "%7B%22a%22%3A%5B%22b%20c%22%5D%7D");
	free(a);
}

/* A runner as the supervisor fills it, from a spec and settings (the
 * defaults for what they lack: state_dir /var/lib/tether, default_pids
 * 4096). */
static void fake_runner(struct runner *r, const char *spec,
                        const char *settings)
{
	struct err e = {0};
	json_t *json;
	static char *envp[] = {"PATH=/host/bin", "TETHER_OUTPUTS=/host/out",
	                       "A=1", NULL};
	static char *argv[] = {"python3", "train.py", NULL};

	memset(r, 0, sizeof(*r));
	if (jobspec_parse(spec, strlen(spec), &r->spec, &e) < 0)
		fail_msg("%s", e.msg);
	json = json_loads(settings, 0, NULL);
	assert_non_null(json);
	if (attempt_settings_parse(json, &r->set, &e) < 0)
		fail_msg("%s", e.msg);
	json_decref(json);
	r->dir = "/var/lib/tether/jobs/42/1";
	r->job_id = "42";
	r->attempt = 1;
	r->work_dir = "/var/lib/tether/jobs/42/1/work";
	r->outputs_dir = "/var/lib/tether/jobs/42/1/outputs";
	r->checkpoints_dir = "/var/lib/tether/jobs/42/1/checkpoints";
	r->uid = 999;
	r->gid = 998;
	r->argv = argv;
	r->envp = envp;
}

static void test_container_body(void **state)
{
	struct runner r;
	struct err e = {0};
	json_t *b = NULL, *hc, *m;
	char *name;

	fake_runner(&r,
	            "{\"name\": \"t\", \"command\": [\"x\"], \"resources\": "
	            "{\"memory\": "
	            "\"1G\", \"cpus\": 1.5, \"gpus\": 2}, \"network\": "
	            "\"none\", \"mounts\": [{\"source\": \"/data/set\", "
	            "\"target\": \"/data\"}], \"workdir\": \"src\"}",
	            "{\"gpus\": [1, 3], \"docker_readonly_rootfs\": true, "
	            "\"agent_id\": \"ag\", \"allowed_mounts\": [{\"source\": "
	            "\"/data\"}]}");
	assert_int_equal(docker_container_body(&r, "img", &b, &e), 0);
	hc = json_object_get(b, "HostConfig");
	assert_string_equal(json_string_value(json_object_get(b, "User")),
	                    "999:998");
	assert_string_equal(json_string_value(json_object_get(b, "WorkingDir")),
	                    "/tether/work/src");
	assert_int_equal(json_integer_value(json_object_get(hc, "Memory")),
	                 1 << 30);
	assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")),
	                 1500000000);
	assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")),
	                 4096);
	assert_string_equal(
	    json_string_value(json_object_get(hc, "NetworkMode")), "none");
	assert_true(json_is_true(json_object_get(hc, "ReadonlyRootfs")));
	assert_non_null(json_object_get(json_object_get(hc, "Tmpfs"), "/tmp"));
	m = json_array_get(json_object_get(hc, "DeviceRequests"), 0);
	assert_string_equal(json_string_value(json_array_get(
	                        json_object_get(m, "DeviceIDs"), 1)),
	                    "3");
	assert_string_equal(
	    json_string_value(json_array_get(
	        json_array_get(json_object_get(m, "Capabilities"), 0), 0)),
	    "gpu");
	m = json_array_get(json_object_get(hc, "Mounts"), 3);
	assert_string_equal(json_string_value(json_object_get(m, "Target")),
	                    "/data");
	assert_true(json_is_true(json_object_get(m, "ReadOnly")));
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(b, "Labels"), "tether.agent")),
	                    "ag");
	/* PATH stays the image's; TETHER_* point into the container */
	m = json_object_get(b, "Env");
	for (size_t i = 0; i < json_array_size(m); i++) {
		const char *kv = json_string_value(json_array_get(m, i));
		assert_true(strncmp(kv, "PATH=", 5) != 0);
		assert_null(strstr(kv, "/host/"));
	}
	assert_int_equal(json_array_size(m), 4);
	name = docker_container_name(&r);
	assert_int_equal(strncmp(name, "tether-42-1-", 12), 0);
	free(name);
	json_decref(b);
	attempt_settings_free(&r.set);
	jobspec_free(r.spec);

	/* a mount outside allowed_mounts is refused */
	fake_runner(
	    &r,
	    "{\"name\": \"t\", \"command\": [\"x\"], \"mounts\": [{\"source\": "
	    "\"/etc\", \"target\": \"/e\"}]}",
	    "{\"allowed_mounts\": [{\"source\": \"/data\"}]}");
	assert_int_equal(docker_container_body(&r, "img", &b, &e), TERR_PERM);
	assert_non_null(strstr(e.msg, "/etc"));
	attempt_settings_free(&r.set);
	jobspec_free(r.spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_demux_split),
	    cmocka_unit_test(test_version_pick),
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_ignore),
	    cmocka_unit_test(test_ignore_load_and_context),
	    cmocka_unit_test(test_refs_and_auth),
	    cmocka_unit_test(test_container_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
