/* cmd-images.c: `tether-agent images bootstrap NAME --packages PKG...`:
 * make a Docker base image on a node that cannot pull from a registry,
 * from the node's own Debian packages (docs/docker.md, "Base images
 * without a registry").
 *
 * debootstrap --variant=minbase the node's suite from the mirror in the
 * node's own apt sources, with python3, python3-pip and the packages
 * asked for; `docker import` the tree as NAME (through the engine at
 * docker_socket); check that `python3 -m pip` runs in it.  A failure
 * leaves no image and no scratch directory.  --cache DIR keeps the
 * debootstrapped tree as a tarball keyed by suite and packages, so a
 * second image of the same packages skips debootstrap. */
#include "agent/cmd.h"

#include "common/attempt.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PKG_MAX 200

struct boot {
	const char *name, *suite, *mirror, *cache, *socket;
	const char *pkgs[PKG_MAX + 3];
	size_t npkgs;
	char *host; /* DOCKER_HOST=unix://<socket> */
};

/* Run argv (looked up on PATH); its output goes to our stderr. */
static int run_tool(struct boot *b, const char *const argv[], struct err *e)
{
	int status;
	pid_t pid;

	fflush(NULL);
	if ((pid = fork()) < 0)
		return err_sys(e, TERR_IO, "fork");
	if (pid == 0) {
		dup2(2, 1);
		putenv(b->host);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0],
		        strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return err_sys(e, TERR_IO, "waitpid");
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	return err_set(e, TERR_FAIL, "%s failed (status %d)", argv[0],
	               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* "URIs:" of the first `Types: deb` stanza of a deb822 .sources text
 * whose Suites list suite. */
static char *mirror_deb822(char *text, const char *suite)
{
	char *save = NULL, *stanza, *out = NULL;

	for (stanza = text; stanza != NULL && out == NULL; stanza = save) {
		char *end = strstr(stanza, "\n\n"), *uris = NULL, *l,
		     *ls = NULL;
		bool deb = false, has = false;
		save = end ? end + 2 : NULL;
		if (end)
			*end = '\0';
		for (l = strtok_r(stanza, "\n", &ls); l;
		     l = strtok_r(NULL, "\n", &ls)) {
			if (strncasecmp(l, "Types:", 6) == 0)
				deb = strstr(l, " deb") != NULL;
			else if (strncasecmp(l, "URIs:", 5) == 0)
				uris = l + 5;
			else if (strncasecmp(l, "Suites:", 7) == 0) {
				char *w, *ws = NULL;
				for (w = strtok_r(l + 7, " \t", &ws); w;
				     w = strtok_r(NULL, " \t", &ws))
					has |= strcmp(w, suite) == 0;
			}
		}
		if (deb && has && uris != NULL) {
			uris += strspn(uris, " \t");
			out =
			    xasprintf("%.*s", (int)strcspn(uris, " \t"), uris);
		}
	}
	return out;
}

/* "deb [opts] URI SUITE ..." lines of a one-line-style sources list. */
static char *mirror_list(char *text, const char *suite)
{
	char *save = NULL, *l;

	for (l = strtok_r(text, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		char *w[4] = {0}, *ws = NULL, *t;
		int n = 0;
		l[strcspn(l, "#")] = '\0';
		for (t = strtok_r(l, " \t", &ws); t && n < 4;
		     t = strtok_r(NULL, " \t", &ws)) {
			if (n == 1 && t[0] == '[') {
				while (t && t[strlen(t) - 1] != ']')
					t = strtok_r(NULL, " \t", &ws);
				continue;
			}
			w[n++] = t;
		}
		if (n >= 3 && strcmp(w[0], "deb") == 0 &&
		    strcmp(w[2], suite) == 0)
			return xstrdup(w[1]);
	}
	return NULL;
}

static char *mirror_in(const char *path, const char *suite)
{
	char *text = NULL, *m = NULL;
	size_t n = strlen(path);

	if (file_read_all(path, 1 << 20, &text, NULL, NULL) < 0)
		return NULL;
	if (n > 8 && strcmp(path + n - 8, ".sources") == 0)
		m = mirror_deb822(text, suite);
	else if (n > 5 && strcmp(path + n - 5, ".list") == 0)
		m = mirror_list(text, suite);
	free(text);
	return m;
}

/* The Debian mirror the node's own apt uses for suite. */
static char *apt_mirror(const char *suite)
{
	const char *dir = "/etc/apt/sources.list.d";
	struct dirent **names = NULL;
	char *m = NULL;
	int n = scandir(dir, &names, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		char *p = xasprintf("%s/%s", dir, names[i]->d_name);
		if (m == NULL)
			m = mirror_in(p, suite);
		free(p);
		free(names[i]);
	}
	free(names);
	return m ? m : mirror_in("/etc/apt/sources.list", suite);
}

static char *os_codename(void)
{
	char *text = NULL, *l, *out = NULL;

	if (file_read_all("/etc/os-release", 65536, &text, NULL, NULL) < 0)
		return NULL;
	if ((l = strstr(text, "VERSION_CODENAME=")) != NULL) {
		l += 17;
		l += *l == '"';
		out = xasprintf("%.*s", (int)strcspn(l, "\"\n"), l);
	}
	free(text);
	return out;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The cached tarball's name: suite and sorted package list (the test
 * harness's tests/bb/harness/baseimage.py uses the same). */
static char *cache_path(struct boot *b, char **include)
{
	char hex[SHA256_HEX_LEN + 1], *inc = xstrdup(""), *n;

	qsort(b->pkgs, b->npkgs, sizeof(*b->pkgs), cmp_str);
	for (size_t i = 0; i < b->npkgs; i++) {
		if (i > 0 && strcmp(b->pkgs[i], b->pkgs[i - 1]) == 0)
			continue;
		n = xasprintf("%s%s%s", inc, inc[0] ? "," : "", b->pkgs[i]);
		free(inc);
		inc = n;
	}
	*include = inc;
	sha256_hex(inc, strlen(inc), hex);
	return b->cache ? xasprintf("%s/rootfs-%s-%.12s.tar", b->cache,
	                            b->suite, hex)
	                : NULL;
}

/* debootstrap into a scratch directory and tar it to tar. */
static int make_tarball(struct boot *b, const char *include, const char *tar,
                        struct err *e)
{
	char dir[] = "/var/tmp/tether-bootstrap.XXXXXX";
	char *inc = xasprintf("--include=%s", include);
	char *tmp = xasprintf("%s.tmp", tar), *p;
	struct err rm = {0};
	bool made = false;
	int rc;

	/* made, not the template's tail: mkdtemp's random letters may end
	 * in 'X' themselves. */
	if (mkdtemp(dir) == NULL) {
		rc = err_sys(e, TERR_IO, "mkdtemp %s", dir);
		goto out;
	}
	made = true;
	fprintf(stderr, "== debootstrap --variant=minbase %s %s (%s)\n",
	        include, b->suite, b->mirror);
	const char *boot[] = {"debootstrap", "--variant=minbase", inc, b->suite,
	                      dir,           b->mirror,           NULL};
	if ((rc = run_tool(b, boot, e)) < 0)
		goto out;
	p = xasprintf("%s/var/cache/apt/archives", dir);
	rm_rf(p, NULL);
	free(p);
	p = xasprintf("%s/var/lib/apt/lists", dir);
	rm_rf(p, NULL);
	free(p);
	const char *t[] = {"tar", "-C", dir, "--numeric-owner",
	                   "-cf", tmp,  ".", NULL};
	if ((rc = run_tool(b, t, e)) == 0 && rename(tmp, tar) < 0)
		rc = err_sys(e, TERR_IO, "rename %s", tmp);
out:
	if (made && rm_rf(dir, &rm) < 0)
		fprintf(stderr, "warning: scratch tree left behind: %s\n",
		        rm.msg);
	unlink(tmp);
	free(tmp);
	free(inc);
	return rc;
}

static int bootstrap(struct boot *b, struct err *e)
{
	char *include = NULL, *cached = cache_path(b, &include);
	char *tar = cached ? xstrdup(cached)
	                   : xstrdup("/var/tmp/tether-bootstrap-rootfs.tar");
	struct stat st;
	int rc = 0;

	if (cached && b->cache && (rc = mkdir_p(b->cache, 0755, e)) < 0)
		goto out;
	if (cached == NULL || stat(tar, &st) < 0)
		rc = make_tarball(b, include, tar, e);
	else
		fprintf(stderr, "== using %s\n", tar);
	if (rc < 0)
		goto out;
	fprintf(stderr, "== docker import %s\n", b->name);
	const char *imp[] = {
	    "docker", "import", "--change", "CMD [\"/bin/sh\"]",
	    tar,      b->name,  NULL};
	if ((rc = run_tool(b, imp, e)) < 0) {
		err_wrap(e, "import into the engine at %s", b->host + 19);
		goto out;
	}
	const char *pip[] = {"docker", "run",       "--rm",    "--network",
	                     "none",   b->name,     "python3", "-m",
	                     "pip",    "--version", NULL};
	if ((rc = run_tool(b, pip, e)) < 0) {
		const char *rmi[] = {"docker", "rmi", b->name, NULL};
		run_tool(b, rmi, NULL);
		err_wrap(e, "python3 -m pip does not run in %s", b->name);
	}
out:
	if (cached == NULL)
		unlink(tar);
	free(cached);
	free(tar);
	free(include);
	return rc;
}

static int images_usage(int rc)
{
	fprintf(rc ? stderr : stdout,
	        "usage: tether-agent images bootstrap NAME --packages PKG... "
	        "[--suite SUITE]\n"
	        "                  [--mirror URL] [--cache DIR]\n"
	        "make the Docker image NAME from this node's Debian packages "
	        "(debootstrap\nminbase with python3, python3-pip and PKG...; "
	        "the mirror of the node's\nown apt sources), for nodes "
	        "without a registry (docs/docker.md)\n");
	return rc;
}

/* Parse the arguments after "bootstrap". */
static int images_args(struct boot *b, int argc, char **argv)
{
	bool pkgs = false;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--packages") == 0) {
			pkgs = true;
		} else if ((strcmp(a, "--suite") == 0 ||
		            strcmp(a, "--mirror") == 0 ||
		            strcmp(a, "--cache") == 0) &&
		           i + 1 < argc) {
			const char **to = a[2] == 's'   ? &b->suite
			                  : a[2] == 'm' ? &b->mirror
			                                : &b->cache;
			*to = argv[++i];
			pkgs = false;
		} else if (a[0] == '-') {
			fprintf(stderr,
			        "tether-agent images: unknown option '%s'\n",
			        a);
			return -1;
		} else if (pkgs && b->npkgs < PKG_MAX &&
		           strspn(a,
		                  "abcdefghijklmnopqrstuvwxyz0123456789+-.") ==
		               strlen(a)) {
			b->pkgs[b->npkgs++] = a;
		} else if (!pkgs && b->name == NULL) {
			b->name = a;
		} else {
			fprintf(stderr,
			        "tether-agent images: unexpected '%s'\n", a);
			return -1;
		}
	}
	return b->name != NULL ? 0 : -1;
}

static int cmd_images_main(struct cmd_ctx *c, int argc, char **argv)
{
	struct boot b = {.socket = c->conf.docker_socket};
	char *suite = NULL, *mirror = NULL;
	struct err e = {0};
	int rc = 1;

	if (argc > 0 &&
	    (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0))
		return images_usage(0);
	if (argc < 1 || strcmp(argv[0], "bootstrap") != 0 ||
	    images_args(&b, argc - 1, argv + 1) < 0)
		return images_usage(2);
	b.pkgs[b.npkgs++] = "python3";
	b.pkgs[b.npkgs++] = "python3-pip";
	if (b.suite == NULL && (b.suite = suite = os_codename()) == NULL) {
		fprintf(stderr, "tether-agent images: no VERSION_CODENAME in "
		                "/etc/os-release: give --suite\n");
		goto out;
	}
	if (b.mirror == NULL &&
	    (b.mirror = mirror = apt_mirror(b.suite)) == NULL) {
		fprintf(
		    stderr,
		    "tether-agent images: no apt source for %s in "
		    "/etc/apt/sources.list.d or /etc/apt/sources.list: give "
		    "--mirror\n",
		    b.suite);
		goto out;
	}
	b.host = xasprintf("DOCKER_HOST=unix://%s",
	                   b.socket ? b.socket : ATTEMPT_DEF_DOCKER_SOCKET);
	if (bootstrap(&b, &e) < 0)
		fprintf(stderr, "tether-agent images bootstrap %s: %s\n",
		        b.name, e.msg);
	else {
		printf("%s\n", b.name);
		rc = 0;
	}
out:
	free(b.host);
	free(suite);
	free(mirror);
	return rc;
}

const struct cmd_entry cmd_images = {
    "images", "bootstrap NAME --packages PKG...",
    "make a Docker base image from this node's Debian packages",
    cmd_images_main};
