/* zip_writer.h — host.zip_writer: a report's zip written entry by entry on libuv's thread pool
 * while its files arrive, then finished and renamed into place (see zip_writer.c). */
#ifndef PMB_ZIP_WRITER_H
#define PMB_ZIP_WRITER_H

#include <lua.h>

/* Adds host.zip_writer to the table on top of L's stack. */
void prim_zip_writer_register(lua_State *L);

#endif
