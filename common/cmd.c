/* cmd.c: looking a command up in a program's table (cmd.h). */
#include "common/cmd.h"

#include <stddef.h>
#include <string.h>

const struct cmd_entry *cmd_find(const struct cmd_entry *const *table,
                                 const char *name)
{
	for (size_t i = 0; table[i] != NULL; i++)
		if (strcmp(table[i]->name, name) == 0)
			return table[i];
	return NULL;
}
