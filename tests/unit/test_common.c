/* Unit tests of common/: parsing, errors, config table, job spec, files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/jobspec.h"
#include "common/sha256.h"
#include "common/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_parse_numbers(void **state)
{
	struct err e = {0};
	int64_t v;
	double d;

	assert_int_equal(parse_i64("42", 0, 100, &v, &e), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_i64("42x", 0, 100, &v, &e), TERR_INVAL);
	assert_int_equal(parse_i64("101", 0, 100, &v, &e), TERR_INVAL);
	assert_int_equal(parse_i64("", 0, 100, &v, &e), TERR_INVAL);
	assert_int_equal(
	    parse_i64("99999999999999999999", 0, INT64_MAX, &v, &e),
	    TERR_INVAL);
	assert_int_equal(parse_double("0.5", 0, 1, &d, &e), 0);
	assert_true(d == 0.5);
	assert_int_equal(parse_double("nan", 0, 1, &d, &e), TERR_INVAL);
	assert_int_equal(parse_duration_ms("90m", &v, &e), 0);
	assert_int_equal(v, 90 * 60000);
	assert_int_equal(parse_duration_ms("1500ms", &v, &e), 0);
	assert_int_equal(v, 1500);
	assert_int_equal(parse_duration_ms("30", &v, &e), 0);
	assert_int_equal(v, 30000);
	assert_int_equal(parse_duration_ms("3 weeks", &v, &e), TERR_INVAL);
	assert_int_equal(parse_size("2G", &v, &e), 0);
	assert_int_equal(v, 2LL << 30);
	assert_int_equal(parse_size("64Ki", &v, &e), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(parse_size("3X", &v, &e), TERR_INVAL);
	assert_int_equal(parse_size("-1", &v, &e), TERR_INVAL);
}

static void test_err_wrap(void **state)
{
	struct err e = {0};

	err_set(&e, TERR_NET, "connect: timed out");
	err_wrap(&e, "lease job %d", 42);
	assert_string_equal(e.msg, "lease job 42: connect: timed out");
	assert_int_equal(e.code, TERR_NET);
	assert_string_equal(err_name(TERR_CONFLICT), "conflict");
}

static void test_utf8(void **state)
{
	assert_true(utf8_valid("h\xc3\xa9llo", 6));
	assert_false(utf8_valid("\xc3", 1));
	assert_false(utf8_valid("\xc0\x80", 2));        /* overlong */
	assert_false(utf8_valid("\xed\xa0\x80", 3));    /* surrogate */
	assert_true(utf8_valid("\xf0\x9f\x98\x80", 4)); /* emoji */
	assert_false(utf8_valid("\xf0\x9f\x98", 3));
}

struct tconf {
	char *name;
	int64_t max_jobs;
	bool flag;
	int64_t poll_ms;
	int64_t budget;
};

static const struct conf_key tkeys[] = {
    {"name", CONF_STR, "node", offsetof(struct tconf, name), 0, 0, "n"},
    {"max_jobs", CONF_INT, "4", offsetof(struct tconf, max_jobs), 1, 64, "m"},
    {"flag", CONF_BOOL, "no", offsetof(struct tconf, flag), 0, 0, "f"},
    {"poll", CONF_DURATION, "30s", offsetof(struct tconf, poll_ms), 0, 0, "p"},
    {"budget", CONF_SIZE, "10G", offsetof(struct tconf, budget), 0, 0, "b"},
    {0},
};

static void test_kv_field(void **state)
{
	const char *rec = "AllocState=MIX NodeName=n1 CPUTot=8\nState=IDLE";
	char v[4];

	(void)state;
	assert_true(str_kv_field(rec, "NodeName", v, sizeof(v)));
	assert_string_equal(v, "n1");
	assert_true(str_kv_field(rec, "State", v, sizeof(v))); /* not Alloc.. */
	assert_string_equal(v, "IDL");                         /* truncated */
	assert_true(str_kv_field(rec, "CPUTot", v, sizeof(v)));
	assert_string_equal(v, "8");
	assert_false(str_kv_field(rec, "Tot", v, sizeof(v)));
	assert_false(str_kv_field(rec, "Gres", v, sizeof(v)));
}

/* "did you mean" picks a close name, none for far ones; messages and
 * logs quote client text escaped. */
static void test_suggest_and_escape(void **state)
{
	static const char *const names[] = {"environment", "env", "resources",
	                                    "name", NULL};
	char out[32];

	(void)state;
	assert_string_equal(str_nearest("enviroment", names), "environment");
	assert_string_equal(str_nearest("nmae", names), "name");
	assert_null(str_nearest("zzzzzz", names));
	assert_null(str_nearest("x", names));
	assert_string_equal(str_escape("a\nb\x1b[0m\\\"", out, sizeof(out)),
	                    "a\\nb\\x1b[0m\\\\\\\"");
	assert_string_equal(str_escape_ctl("\"a\\\r", out, sizeof(out)),
	                    "\"a\\\\r");
	assert_string_equal(str_escape("0123456789abcdef", out, 12),
	                    "0123456...");
}

static void test_conf(void **state)
{
	char path[] = "/tmp/tconfXXXXXX";
	struct tconf c = {0};
	struct err e = {0};
	int fd = mkstemp(path);
	const char *text = "# comment\nname = \"gpu box\"\nmax_jobs=8\n"
	                   "flag = yes\npoll = 2s\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(conf_defaults(tkeys, &c, &e), 0);
	assert_int_equal(c.max_jobs, 4);
	assert_int_equal(c.budget, 10LL << 30);
	assert_int_equal(conf_load_file(tkeys, &c, path, &e), 0);
	assert_string_equal(c.name, "gpu box");
	assert_int_equal(c.max_jobs, 8);
	assert_true(c.flag);
	assert_int_equal(c.poll_ms, 2000);

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "\nmax_job = 3\n", 13), 13);
	close(fd);
	assert_int_equal(conf_load_file(tkeys, &c, path, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "line 2"));
	assert_non_null(strstr(e.msg, "did you mean 'max_jobs'"));

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "max_jobs = 65\n", 14), 14);
	close(fd);
	assert_int_equal(conf_load_file(tkeys, &c, path, &e), TERR_INVAL);
	assert_non_null(strstr(e.msg, "max_jobs"));

	setenv("TTEST_MAX_JOBS", "5", 1);
	assert_int_equal(conf_load_env(tkeys, &c, "TTEST_", &e), 0);
	assert_int_equal(c.max_jobs, 5);
	unsetenv("TTEST_MAX_JOBS");
	unlink(path);
	conf_free(tkeys, &c);
}

static void expect_bad(const char *json, const char *field)
{
	struct jobspec *s = NULL;
	struct err e = {0};

	assert_int_equal(jobspec_parse(json, strlen(json), &s, &e), TERR_INVAL);
	if (strstr(e.msg, field) == NULL && strcmp(e.field, field) != 0)
		fail_msg("error '%s' (field '%s') does not name '%s'", e.msg,
		         e.field, field);
	assert_null(s);
}

static void test_jobspec(void **state)
{
	const char *good =
	    "{\"name\":\"digits\",\"command\":[\"python3\",\"train.py\"],"
	    "\"source\":{\"git\":{\"url\":\"/srv/repo.git\",\"commit\":"
	    "\"0123abcd\"}},\"environment\":{\"kind\":\"venv\","
	    "\"system_site_packages\":true,\"requirements\":[\"tiny\"]},"
	    "\"resources\":{\"cpus\":0.5,\"memory\":\"256M\",\"gpus\":0,"
	    "\"disk\":\"10G\"},"
	    "\"env\":{\"A\":\"1\"},\"secrets\":{\"TOKEN\":\"hunter22\"},"
	    "\"timeout\":\"10m\",\"retries\":2,\"priority\":5,"
	    "\"launcher\":\"sandbox\",\"network\":\"none\","
	    "\"mounts\":[{\"source\":\"/data\",\"target\":\"/data\"}]}";
	struct jobspec *s = NULL;
	struct err e = {0};

	assert_int_equal(jobspec_parse(good, strlen(good), &s, &e), 0);
	assert_string_equal(s->name, "digits");
	assert_int_equal(s->argc, 2);
	assert_string_equal(s->argv[1], "train.py");
	assert_null(s->argv[2]);
	assert_int_equal(s->source.kind, SOURCE_GIT);
	assert_int_equal(s->env.kind, ENV_VENV);
	assert_true(s->env.system_site_packages);
	assert_string_equal(s->env.requirements[0], "tiny");
	assert_true(s->resources.cpus == 0.5);
	assert_int_equal(s->resources.memory, 256LL << 20);
	assert_int_equal(s->resources.disk, 10LL << 30);
	assert_int_equal(s->timeout_ms, 600000);
	assert_int_equal(s->launcher, LAUNCHER_SANDBOX);
	assert_int_equal(s->network, NET_NONE);
	assert_string_equal(jobspec_secret(s, "TOKEN"), "hunter22");
	assert_true(s->mounts[0].readonly);
	jobspec_free(s);

	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"colour\":1}",
	           "colour");
	expect_bad("{\"command\":[\"a\"]}", "name");
	expect_bad("{\"name\":\"x\",\"command\":[]}", "command");
	expect_bad("{\"name\":\"x\",\"command\":\"ls\"}", "command");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"resources\":"
	           "{\"cpus\":\"two\"}}",
	           "resources.cpus");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"resources\":"
	           "{\"memory\":\"2Q\"}}",
	           "resources.memory");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"resources\":"
	           "{\"disk\":\"lots\"}}",
	           "resources.disk");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"resources\":"
	           "{\"disk\":-1}}",
	           "resources.disk");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"resources\":"
	           "{\"disk\":4096}}",
	           "resources.disk: at least 1M");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"environment\":"
	           "{\"kind\":\"nix\"}}",
	           "environment.kind");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"environment\":"
	           "{\"kind\":\"venv\",\"requirements_file\":\"../r.txt\"}}",
	           "environment.requirements_file");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"env\":"
	           "{\"1BAD\":\"v\"}}",
	           "env.1BAD");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"source\":{\"git\":"
	           "{\"url\":\"u\",\"commit\":\"XYZ\"}}}",
	           "source.git.commit");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"source\":{\"git\":"
	           "{\"url\":\"u\",\"ref\":\"--upload-pack=x\"}}}",
	           "source.git.ref");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"mounts\":"
	           "[{\"source\":\"data\"}]}",
	           "mounts[0]");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"launcher\":"
	           "\"k8s\"}",
	           "launcher");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"workdir\":"
	           "\"/etc\"}",
	           "workdir");
	expect_bad("{\"name\":\"x\",\"command\":[\"a\"],\"name\":\"y\"}",
	           "JSON");
	expect_bad("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]"
	           "]]]]]]]",
	           "deeper");
	expect_bad("{\"name\":\"\xff\",\"command\":[\"a\"]}", "UTF-8");
}

/* nodes, processes_per_node, outputs_from: defaults, values, refusals. */
static void test_jobspec_nodes(void **state)
{
	const char *one = "{\"name\":\"m\",\"command\":[\"a\"]}";
	const char *gang = "{\"name\":\"m\",\"command\":[\"a\"],\"nodes\":3,"
	                   "\"processes_per_node\":2,\"outputs_from\":\"all\"}";
	struct jobspec *s = NULL;
	struct err e = {0};

	(void)state;
	assert_int_equal(jobspec_parse(one, strlen(one), &s, &e), 0);
	assert_int_equal(s->nodes, 1);
	assert_int_equal(s->processes_per_node, 1);
	assert_false(s->outputs_all);
	jobspec_free(s);
	assert_int_equal(jobspec_parse(gang, strlen(gang), &s, &e), 0);
	assert_int_equal(s->nodes, 3);
	assert_int_equal(s->processes_per_node, 2);
	assert_true(s->outputs_all);
	jobspec_free(s);
#define N(body) "{\"name\":\"m\",\"command\":[\"a\"]," body "}"
	expect_bad(N("\"nodes\":0"), "nodes");
	expect_bad(N("\"nodes\":2,\"network\":\"none\""), "network");
	expect_bad(N("\"nodes\":2,\"launcher\":\"spark\""), "nodes");
	expect_bad(N("\"processes_per_node\":0"), "processes_per_node");
	expect_bad(N("\"outputs_from\":\"some\""), "outputs_from");
#undef N
}

/* The `metrics` object: 400 naming the field for each bad part. */
static void test_jobspec_metrics(void **state)
{
	const char *good =
	    "{\"name\":\"m\",\"command\":[\"a\"],\"metrics\":{\"regex\":"
	    "\"epoch (?P<step>\\\\d+) loss (?P<loss>[0-9.e-]+)\","
	    "\"json_lines\":true,\"tensorboard\":\"tb/\"}}";
	struct jobspec *s = NULL;
	struct err e = {0};

	(void)state;
	assert_int_equal(jobspec_parse(good, strlen(good), &s, &e), 0);
	assert_string_equal(s->metrics.regex,
	                    "epoch (?P<step>\\d+) loss (?P<loss>[0-9.e-]+)");
	assert_true(s->metrics.json_lines);
	assert_string_equal(s->metrics.tensorboard, "tb/");
	jobspec_free(s);
#define M(body) "{\"name\":\"m\",\"command\":[\"a\"],\"metrics\":" body "}"
	expect_bad(M("{\"colour\":1}"), "metrics.colour");
	expect_bad(M("[]"), "metrics");
	expect_bad(M("{\"regex\":1}"), "metrics.regex");
	expect_bad(M("{\"regex\":\"(?P<loss>[0-9\"}"), "metrics.regex");
	expect_bad(M("{\"regex\":\"loss ([0-9.]+)\"}"),
	           "metrics.regex: has no named group");
	expect_bad(M("{\"json_lines\":\"yes\"}"), "metrics.json_lines");
	expect_bad(M("{\"tensorboard\":\"../tb\"}"), "metrics.tensorboard");
	expect_bad(M("{\"tensorboard\":\"/tmp/tb\"}"), "metrics.tensorboard");
	expect_bad(M("{\"tensorboard\":true}"), "metrics.tensorboard");
#undef M
}

static void test_paths(void **state)
{
	assert_true(path_is_safe_relative("a/b/c.txt"));
	assert_false(path_is_safe_relative("../x"));
	assert_false(path_is_safe_relative("a/../x"));
	assert_false(path_is_safe_relative("/etc/passwd"));
	assert_false(path_is_safe_relative("a//b"));
	assert_false(path_is_safe_relative("a/./b"));
	assert_false(path_is_safe_relative(""));
	assert_false(path_is_safe_relative("a\nb"));
}

static void test_files(void **state)
{
	char dir[] = "/tmp/tfilesXXXXXX", path[256], *data = NULL;
	char hex[65];
	struct err e = {0};
	struct stat st;
	size_t len;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(mkdir_p(path, 0700, &e), 0);
	snprintf(path, sizeof(path), "%s/a/f.json", dir);
	assert_int_equal(file_write_atomic(path, "hello", 5, 0600, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(file_read_all(path, 100, &data, &len, &e), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "hello");
	free(data);
	assert_int_equal(file_read_all(path, 3, &data, &len, &e), TERR_TOOBIG);
	/* in place at an offset, past the end too (a hole of zeros) */
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(fd_pwrite_all(fd, "EL", 2, 1, &e), 0);
	assert_int_equal(fd_pwrite_all(fd, "!", 1, 6, &e), 0);
	close(fd);
	assert_int_equal(file_read_all(path, 100, &data, &len, &e), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(data, "hELlo\0!", 7);
	free(data);
	assert_int_equal(fd_pwrite_all(-1, "x", 1, 0, &e), TERR_IO);
	assert_non_null(strstr(e.msg, "write at 0"));
	/* exactly len bytes at an offset, or -1 with EIO where the file ends */
	char got[4] = {0};
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fd_pread_all(fd, got, 3, 2), 0);
	assert_memory_equal(got, "Llo", 3);
	errno = 0;
	assert_int_equal(fd_pread_all(fd, got, 3, 5), -1);
	assert_int_equal(errno, EIO);
	close(fd);
	assert_int_equal(fd_pread_all(-1, got, 1, 0), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(file_write_atomic(path, "hello", 5, 0600, &e), 0);
	assert_int_equal(sha256_file(path, hex, NULL, &e), 0);
	assert_string_equal(hex, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7"
	                         "425e73043362938b9824");
	assert_int_equal(rm_rf(dir, &e), 0);
	assert_int_equal(stat(dir, &st), -1);
}

/* FIPS 180-2 vectors, one shot and in uneven pieces (common/sha256.c),
 * with each implementation this CPU has. */
static void sha256_vectors(void)
{
	char hex[SHA256_HEX_LEN + 1], a[1001];
	struct sha256_ctx *c;

	sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b"
	                         "934ca495991b7852b855");
	sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a39617"
	                         "7a9cb410ff61f20015ad");
	c = sha256_new();
	sha256_update(c, "abcdbcdecdefdefgefghfghighijhij", 31);
	sha256_update(c, "kijkljklmklmnlmnomnopnopq", 25);
	sha256_final(c, hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff"
	                         "2167f6ecedd419db06c1");
	memset(a, 'a', sizeof(a));
	c = sha256_new();
	for (int i = 0; i < 1000; i++)
		sha256_update(c, a, i % 2 ? 999 : 1001);
	sha256_final(c, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497"
	                         "200e046d39ccc7112cd0");
}

static void test_sha256(void **state)
{
	static unsigned char data[(1 << 20) + 300];
	char want[SHA256_HEX_LEN + 1], got[SHA256_HEX_LEN + 1];
	uint32_t x = 2463534242u;

	(void)state;
	assert_int_equal(sha256_set_impl("c"), 0);
	sha256_vectors();
	if (sha256_set_impl("sha-ni") < 0) {
		printf("note: this CPU has no SHA instructions: C only\n");
		return;
	}
	sha256_vectors();
	/* every length around the block and padding edges, and 1 MiB in
	 * uneven pieces: the SHA instructions agree with the C */
	for (size_t i = 0; i < sizeof(data); i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		data[i] = (unsigned char)x;
	}
	for (size_t n = 0; n <= 300; n++) {
		assert_int_equal(sha256_set_impl("c"), 0);
		sha256_hex(data, n, want);
		assert_int_equal(sha256_set_impl("sha-ni"), 0);
		sha256_hex(data, n, got);
		assert_string_equal(got, want);
	}
	for (int k = 0; k < 2; k++) {
		struct sha256_ctx *c;
		size_t off = 0, step = 1;
		assert_int_equal(sha256_set_impl(k ? "sha-ni" : "c"), 0);
		c = sha256_new();
		while (off < sizeof(data)) {
			size_t n = sizeof(data) - off < step
			               ? sizeof(data) - off
			               : step;
			sha256_update(c, data + off, n);
			off += n;
			step = step * 7 % 9973 + 1;
		}
		sha256_final(c, k ? got : want);
	}
	assert_string_equal(got, want);
	assert_string_equal(sha256_impl(), "sha-ni");
}

static void test_buf(void **state)
{
	struct buf b;
	struct err e = {0};

	buf_init(&b, 10);
	assert_int_equal(buf_append(&b, "hello", 5, &e), 0);
	assert_int_equal(buf_printf(&b, &e, "%d", 1234), 0);
	assert_string_equal(b.data, "hello1234");
	assert_int_equal(buf_append(&b, "xx", 2, &e), TERR_TOOBIG);
	buf_consume(&b, 5);
	assert_string_equal(b.data, "1234");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256),
	    cmocka_unit_test(test_parse_numbers),
	    cmocka_unit_test(test_err_wrap),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_kv_field),
	    cmocka_unit_test(test_suggest_and_escape),
	    cmocka_unit_test(test_conf),
	    cmocka_unit_test(test_jobspec),
	    cmocka_unit_test(test_jobspec_metrics),
	    cmocka_unit_test(test_jobspec_nodes),
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_files),
	    cmocka_unit_test(test_buf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
