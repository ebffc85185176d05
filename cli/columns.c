/* columns.c: a text table whose column widths come from its contents
 * (header and every cell), so a long state such as source_failed or a long
 * name never pushes a row out of line.  Cells are copied; control
 * characters in them are shown escaped, never sent to the terminal. */
#include "cli/cli.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

#define COLUMNS_MAX 16

struct columns {
	size_t ncol, nrow, cap;
	char **cells; /* row-major, row 0 is the header */
	size_t width[COLUMNS_MAX];
};

/* Display width: UTF-8 code points (continuation bytes do not count). */
static size_t cell_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

struct columns *columns_new(size_t ncol, const char *const *header)
{
	struct columns *t = xcalloc(1, sizeof(*t));

	t->ncol = ncol < COLUMNS_MAX ? ncol : COLUMNS_MAX;
	columns_add(t, header);
	return t;
}

void columns_add(struct columns *t, const char *const *row)
{
	char shown[512];

	if (t->nrow == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cells, cap * t->ncol * sizeof(*c));
		if (c == NULL)
			abort();
		t->cells = c;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncol; i++) {
		char *cell = xstrdup(str_escape_ctl(row[i] ? row[i] : "-",
		                                    shown, sizeof(shown)));
		size_t w = cell_width(cell);
		if (w > t->width[i])
			t->width[i] = w;
		t->cells[t->nrow * t->ncol + i] = cell;
	}
	t->nrow++;
}

void columns_print(const struct columns *t, FILE *out)
{
	for (size_t r = 0; r < t->nrow; r++) {
		for (size_t i = 0; i < t->ncol; i++) {
			const char *cell = t->cells[r * t->ncol + i];
			if (i + 1 == t->ncol) { /* no trailing blanks */
				fprintf(out, "%s\n", cell);
				break;
			}
			fprintf(out, "%s%*s", cell,
			        (int)(t->width[i] - cell_width(cell) + 2), "");
		}
	}
}

void columns_free(struct columns *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrow * t->ncol; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
