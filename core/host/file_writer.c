/* file_writer.c — a file written in pieces and put in place at once: host.file_writer(path) gives
 * scripts a writer whose write(chunk) appends to a hidden temporary file next to path and whose
 * close() renames it over path (like host.write_file, atomically), so a report can be written as
 * it is rendered instead of as one big string. Dropped without close() (an error, a killed
 * command), the temporary file is removed by the collector. Registered by primitives_local.c;
 * called from scripts (lib/bundle.lua); paths go through the write root (prim_write_path). The
 * plain C part (file_writer_*) has no Lua and is unit-tested by tests/c/test_file_writer.c. */

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/file_writer.h"
#include "host/host_gen.h"

#define WRITER_MT "pmb.file_writer"

int file_writer_open(struct file_writer *w, const char *path)
{
    w->fd = -1;
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path ||
        snprintf(w->tmp, sizeof w->tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof w->tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    w->fd = mkstemp(w->tmp);
    if (w->fd < 0) {
        return -1;
    }
    fchmod(w->fd, 0644);
    return 0;
}

int file_writer_write(struct file_writer *w, const char *data, size_t len)
{
    size_t off = 0;
    if (w->fd < 0) {
        errno = EBADF;
        return -1;
    }
    while (off < len) {
        ssize_t n = write(w->fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

int file_writer_commit(struct file_writer *w)
{
    int fd = w->fd;
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    w->fd = -1;
    if (close(fd) < 0 || rename(w->tmp, w->path) < 0) {
        int e = errno;
        unlink(w->tmp);
        errno = e;
        return -1;
    }
    return 0;
}

void file_writer_abort(struct file_writer *w)
{
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
        unlink(w->tmp);
    }
}

/* ---- the Lua side: host.file_writer(path) -> writer | nil, err ---- */

static struct file_writer *writer_check(lua_State *L)
{
    return luaL_checkudata(L, 1, WRITER_MT);
}

/* writer:write(chunk [, i [, j]]) -> true | nil, err (the writer is aborted: the file is not
 * written). i and j pick chunk:sub(i, j) without making that string (a JSON batch written
 * without its brackets: lib/bundle.lua). */
static int writer_write(lua_State *L)
{
    struct file_writer *w = writer_check(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    lua_Integer j = luaL_optinteger(L, 4, -1);
    lua_Integer n = (lua_Integer)len;
    if (w->fd < 0) {
        return luaL_error(L, "file writer: write after close");
    }
    /* string.sub's reading of i and j: negative counts from the end, clamped to the string */
    i = i < 0 ? (i < -n ? 1 : n + i + 1) : (i == 0 ? 1 : i);
    j = j < 0 ? (j < -n ? 0 : n + j + 1) : (j > n ? n : j);
    if (i > j) {
        lua_pushboolean(L, 1);
        return 1;
    }
    data += i - 1;
    len = (size_t)(j - i + 1);
    if (file_writer_write(w, data, len) < 0) {
        int e = errno;
        file_writer_abort(w);
        errno = e;
        return prim_fail_errno(L, w->path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* writer:close() -> true | nil, err: the file is in place, whole, or not at all */
static int writer_close(lua_State *L)
{
    struct file_writer *w = writer_check(L);
    if (w->fd < 0) {
        return prim_fail(L, "io", "file writer: already closed or failed");
    }
    if (file_writer_commit(w) < 0) {
        return prim_fail_errno(L, w->path);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* writer:abort(): nothing is written; the temporary file goes */
static int writer_abort(lua_State *L)
{
    file_writer_abort(writer_check(L));
    return 0;
}

static int writer_gc(lua_State *L)
{
    file_writer_abort(luaL_checkudata(L, 1, WRITER_MT));
    return 0;
}

static int prim_file_writer(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char abs[PATH_MAX];
    prim_write_path(L, "file_writer", path, 1, abs, sizeof abs);
    struct file_writer *w = lua_newuserdatauv(L, sizeof *w, 0);
    w->fd = -1; /* the metatable (and its __gc) only once there is something to clean */
    if (luaL_newmetatable(L, WRITER_MT)) {
        static const luaL_Reg methods[] = {{"write", writer_write},
                                           {"close", writer_close},
                                           {"abort", writer_abort},
                                           {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, writer_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    if (file_writer_open(w, abs) < 0) {
        return prim_fail_errno(L, abs);
    }
    return 1;
}

void prim_file_writer_register(lua_State *L)
{
    lua_pushcfunction(L, prim_file_writer);
    lua_setfield(L, -2, "file_writer");
}
