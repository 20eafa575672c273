/* file_writer.h — a file written in pieces into a temporary file, then renamed into place (see
 * file_writer.c); host.file_writer for scripts. */
#ifndef PMB_FILE_WRITER_H
#define PMB_FILE_WRITER_H

#include <limits.h>
#include <lua.h>
#include <stddef.h>

struct file_writer {
    int fd; /* the temporary file; -1 once committed or aborted */
    char path[PATH_MAX];
    char tmp[PATH_MAX + 16];
};

/* Create path.tmp.XXXXXX (mode 0644) beside path. 0, or -1 with errno. */
int file_writer_open(struct file_writer *w, const char *path);
/* Append len bytes. 0, or -1 with errno (the writer stays open: abort it). */
int file_writer_write(struct file_writer *w, const char *data, size_t len);
/* Close and rename over path. 0, or -1 with errno (the temporary file is removed). */
int file_writer_commit(struct file_writer *w);
/* Close and remove the temporary file; nothing when already committed or aborted. */
void file_writer_abort(struct file_writer *w);

/* Adds host.file_writer to the table on top of L's stack. */
void prim_file_writer_register(lua_State *L);

#endif
