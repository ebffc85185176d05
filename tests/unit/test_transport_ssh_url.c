/* Unit tests of the SSH transport's parsers: ssh:// URLs, fingerprints as
 * OpenSSH prints them, and the host key algorithms preferred from a
 * known_hosts file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "transport/ssh-tunnel-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void url_ok(const char *url, const char *user, const char *host,
                   int port)
{
	struct ssh_target t = {0};
	struct err e = {0};

	assert_int_equal(ssh_url_parse(url, &t, &e), 0);
	assert_string_equal(t.user, user);
	assert_string_equal(t.host, host);
	assert_int_equal(t.port, port);
	ssh_target_free(&t);
}

static void url_bad(const char *url, const char *needle)
{
	struct ssh_target t = {0};
	struct err e = {0};

	assert_int_equal(ssh_url_parse(url, &t, &e), TERR_INVAL);
	if (strstr(e.msg, needle) == NULL)
		fail_msg("'%s': message '%s' lacks '%s'", url, e.msg, needle);
	assert_null(t.user);
}

static void test_url_forms(void **state)
{
	url_ok("ssh://tether@ws.example.com", "tether", "ws.example.com", 22);
	url_ok("ssh://root@127.0.0.1:2222", "root", "127.0.0.1", 2222);
	url_ok("ssh://u@[::1]:2200/", "u", "::1", 2200);
	url_ok("ssh://u@[fe80::1]", "u", "fe80::1", 22);
}

static void test_url_errors(void **state)
{
	url_bad("https://u@h", "expected ssh://");
	url_bad("ssh://host", "no user");
	url_bad("ssh://@host", "no user");
	url_bad("ssh://u@", "no host");
	url_bad("ssh://u@h:0", "port");
	url_bad("ssh://u@h:70000", "port");
	url_bad("ssh://u@h:22x", "port");
	url_bad("ssh://u@h/path", "no path");
	url_bad("ssh://u@[::1", "']'");
	url_bad("ssh://u:pw@h", "bad user");
}

/* The SHA256 fingerprint of a key blob equals `ssh-keygen -l`'s. */
static void test_fingerprint(void **state)
{
	/* "ssh-ed25519" key blob whose fingerprint ssh-keygen printed as
	 * SHA256:OOaDfg+lTcVzNCqwOPjlaQdNxyI9ITnadBoGYyw/U9Y */
	static const char b64[] = "AAAAC3NzaC1lZDI1NTE5AAAAIDrPafQ4RApTsjqjkdXy"
	                          "PDeX+Ll6nxn/DtP0TBbiNMlD";
	char path[] = "/tmp/tether-fp-XXXXXX", cmd[512], want[128] = "";
	char fp[SSH_FP_LEN];
	unsigned char blob[128];
	FILE *f;
	int fd = mkstemp(path), n;

	assert_true(fd >= 0);
	dprintf(fd, "ssh-ed25519 %s test\n", b64);
	close(fd);
	snprintf(cmd, sizeof(cmd),
	         "ssh-keygen -l -E sha256 -f %s 2>/dev/null | cut -d' ' -f2",
	         path);
	f = popen(cmd, "r");
	assert_non_null(f);
	if (fgets(want, sizeof(want), f) == NULL || want[0] == '\0') {
		pclose(f);
		unlink(path);
		skip();
	}
	pclose(f);
	unlink(path);
	want[strcspn(want, "\n")] = '\0';
	snprintf(cmd, sizeof(cmd), "echo %s | base64 -d", b64);
	f = popen(cmd, "r");
	n = (int)fread(blob, 1, sizeof(blob), f);
	pclose(f);
	ssh_fingerprint(blob, (size_t)n, fp);
	assert_string_equal(fp, want);
}

#define KEY_ED25519                                                            \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDrPafQ4RApTsjqjkdXyPDeX+Ll6nxn/" \
	"DtP0TBbiNMlD\n"
#define KEY_ECDSA                                                              \
	"ecdsa-sha2-nistp256 "                                                 \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEe"      \
	"zOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/"                   \
	"y6v0mKV0U2w0WZ2YB/++Tpockg=\n"

/* The host key algorithms known_hosts text prefers for 10.1.2.3:2222. */
static char *prefs_of(const char *text)
{
	char path[] = "/tmp/tether-kh-XXXXXX";
	struct ssh_target t = {.user = "u", .host = "10.1.2.3", .port = 2222};
	struct err e = {0};
	char *prefs = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	dprintf(fd, "%s", text);
	close(fd);
	assert_int_equal(ssh_hostkey_prefs(path, &t, &prefs, &e), 0);
	unlink(path);
	return prefs;
}

/* known_hosts entries for the host put their algorithms first; entries of
 * other hosts (also hashed ones) do not count; several entries for the
 * host give their algorithms comma-separated, in file order, each once. */
static void test_hostkey_prefs(void **state)
{
	struct ssh_target t = {.user = "u", .host = "10.1.2.3", .port = 2222};
	struct err e = {0};
	char *prefs;

	prefs = prefs_of("[10.1.2.3]:2222 " KEY_ED25519
	                 "other.example.com " KEY_ECDSA);
	assert_non_null(prefs);
	assert_string_equal(prefs, "ssh-ed25519");
	free(prefs);
	prefs = prefs_of("[10.9.9.9]:2222 " KEY_ED25519);
	assert_null(prefs);
	assert_int_equal(ssh_hostkey_prefs("/nonexistent", &t, &prefs, &e), 0);
	assert_null(prefs);
	prefs =
	    prefs_of("[10.1.2.3]:2222 " KEY_ED25519 "[10.1.2.3]:2222 " KEY_ECDSA
	             "[10.1.2.3]:2222 " KEY_ED25519);
	assert_non_null(prefs);
	assert_string_equal(prefs, "ssh-ed25519,ecdsa-sha2-nistp256");
	free(prefs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_url_forms),
	    cmocka_unit_test(test_url_errors),
	    cmocka_unit_test(test_fingerprint),
	    cmocka_unit_test(test_hostkey_prefs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
