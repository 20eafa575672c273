/* signal.h — host.signal(): a coroutine waits until another notifies it (see signal.c). */
#ifndef PMB_SIGNAL_H
#define PMB_SIGNAL_H

#include <lua.h>

/* Adds host.signal to the table on top of L's stack. */
void prim_signal_register(lua_State *L);

#endif
