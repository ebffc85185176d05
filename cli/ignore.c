/* ignore.c: the simple subset of .gitignore that `tether submit --dir`
 * honours, from the top directory's .gitignore and .tetherignore:
 *   - blank lines and '#' comments are skipped; "!pat" re-includes;
 *   - "pat/" matches directories only;
 *   - a pattern with a '/' inside (or leading) is anchored at the top and
 *     matched against the relative path; otherwise against each name;
 *   - '*', '?', '[...]' as in fnmatch; "**" matches across '/'.
 * The last matching pattern wins.  .git is always left out. */
#include "cli/cli.h"
#include "common/fileio.h"
#include "common/util.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

struct rule {
	char *pat;
	bool neg, dir_only, anchored, deep;
};

struct ignore {
	struct rule *rules;
	size_t n, cap;
};

static void add_rule(struct ignore *ig, char *line)
{
	struct rule r = {0};
	size_t len;

	while (*line == ' ' || *line == '\t')
		line++;
	len = strlen(line);
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (len == 0 || line[0] == '#')
		return;
	if (line[0] == '!') {
		r.neg = true;
		line++;
		len--;
	}
	if (len > 0 && line[len - 1] == '/') {
		r.dir_only = true;
		line[--len] = '\0';
	}
	if (len == 0)
		return;
	r.anchored = strchr(line, '/') != NULL;
	if (line[0] == '/')
		line++;
	r.deep = strstr(line, "**") != NULL;
	r.pat = xstrdup(line);
	if (ig->n == ig->cap) {
		ig->cap = ig->cap ? ig->cap * 2 : 16;
		ig->rules = realloc(ig->rules, ig->cap * sizeof(*ig->rules));
		if (ig->rules == NULL)
			abort();
	}
	ig->rules[ig->n++] = r;
}

static void load_file(struct ignore *ig, const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name), *text = NULL, *line, *save;
	size_t n;

	if (file_read_all(path, 1 << 20, &text, &n, NULL) == 0) {
		for (line = strtok_r(text, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save))
			add_rule(ig, line);
	}
	free(text);
	free(path);
}

struct ignore *ignore_load(const char *dir)
{
	struct ignore *ig = xcalloc(1, sizeof(*ig));

	load_file(ig, dir, ".gitignore");
	load_file(ig, dir, ".tetherignore");
	return ig;
}

static bool rule_match(const struct rule *r, const char *rel, bool is_dir)
{
	const char *base = strrchr(rel, '/');

	if (r->dir_only && !is_dir)
		return false;
	if (r->anchored || r->deep)
		return fnmatch(r->pat, rel, r->deep ? 0 : FNM_PATHNAME) == 0;
	return fnmatch(r->pat, base ? base + 1 : rel, 0) == 0;
}

bool ignore_match(const struct ignore *ig, const char *rel, bool is_dir)
{
	const char *base = strrchr(rel, '/');
	bool out = false;

	if (strcmp(base ? base + 1 : rel, ".git") == 0)
		return true;
	for (size_t i = 0; i < ig->n; i++)
		if (rule_match(&ig->rules[i], rel, is_dir))
			out = !ig->rules[i].neg;
	return out;
}

void ignore_free(struct ignore *ig)
{
	if (ig == NULL)
		return;
	for (size_t i = 0; i < ig->n; i++)
		free(ig->rules[i].pat);
	free(ig->rules);
	free(ig);
}
