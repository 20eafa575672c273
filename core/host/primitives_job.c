/* primitives_job.c — host.job() and host.job_lost() (docs/lua-api.md): in database mode, the job an
 * envelope's coroutine runs as (its id and the generation that is its fencing token, written
 * by core/net/accept.c or claimed by core/db/jobs.c) and the scripts' way to say the job is no
 * longer theirs (lib/jobs.lua found it fenced): the host then posts no failure reply and does not
 * finish the job. Registered by primitives_io.c (prim_open); reads the task (host_gen.h). */
#include <lauxlib.h>

#include "db/db.h"
#include "host/host_gen.h"

/* host.job() -> { id =, generation =, owner =, degraded =, lost = } or nil (file mode, or not an
 * envelope's). */
int prim_job(lua_State *L)
{
    struct host_task *t =
        host_task_command(host_task_of(L)); /* a host.all child: its parent's job */
    if (!t || !t->job_id[0]) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, t->job_id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, t->job_generation);
    lua_setfield(L, -2, "generation");
    lua_pushboolean(L, t->job_degraded);
    lua_setfield(L, -2, "degraded");
    lua_pushboolean(L, t->job_lost);
    lua_setfield(L, -2, "lost");
    lua_pushstring(L, db_instance()); /* with the generation, the fencing token */
    lua_setfield(L, -2, "owner");
    return 1;
}

/* host.job_lost(): the job was fenced; end quietly. */
int prim_job_lost(lua_State *L)
{
    struct host_task *t = host_task_command(host_task_of(L));
    if (t) {
        t->job_lost = 1;
    }
    return 0;
}
