/* primitives_db.c — host.db(sql, ...) (docs/lua-api.md): one SQL statement with text parameters
 * on the script loop's database connection (core/db/db.h), the coroutine yielding until the
 * result. Rows come back as an array of {column = string} (SQL NULL = absent) with `affected` set;
 * a failure is nil, err with err.code the SQLSTATE (or db_off, db_unavailable, db_lost). Registered
 * by primitives_io.c (prim_open); calls db.h, pg.h, metrics.c and host_task.c (resume). */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/loop.h"
#include "base/metrics.h"
#include "db/db.h"
#include "host/host_gen.h"

#define DB_MAX_PARAMS 64

/* One statement in flight. Owned by the task while it waits (t->op); the continuation frees it,
 * or db_cancel does (then pg.c never calls db_done). */
struct db_op {
    struct prim_op op; /* first: the host's view of this pending primitive */
    struct pg_query *query;
    PGresult *res;
    int sent;
    double started;
    char error[512];
};

static void db_done(PGresult *res, const char *error, int sent, void *arg)
{
    struct db_op *op = arg;
    op->res = res;
    op->sent = sent;
    op->query = NULL;
    if (error) {
        snprintf(op->error, sizeof op->error, "%s", error);
    }
    host_task_resume_soon(op->op.task); /* Lua runs from the ready queue, not inside pg.c */
}

static void db_free(struct prim_op *base)
{
    struct db_op *op = (struct db_op *)base;
    PQclear(op->res);
    free(op);
}

static void db_cancel(struct prim_op *base)
{
    struct db_op *op = (struct db_op *)base;
    pg_cancel(op->query);
    db_free(base);
}

static void db_count(const char *outcome, double seconds)
{
    char labels[64];
    snprintf(labels, sizeof labels, "conn=\"script\",outcome=\"%s\"", outcome);
    metrics_observe("pmb_db_statement_seconds", "database statements from scripts, by outcome",
                    labels, seconds);
    if (strcmp(outcome, "ok") != 0) {
        metrics_counter_add("pmb_db_errors_total", "database statements that failed", labels, 1);
    }
}

/* Push the rows of res (stack: ... rows). */
static void db_push_rows(lua_State *L, PGresult *res)
{
    int nrows = PQntuples(res), ncols = PQnfields(res);
    lua_createtable(L, nrows, 1);
    for (int r = 0; r < nrows; r++) {
        lua_createtable(L, 0, ncols); /* stack: ... rows row */
        for (int col = 0; col < ncols; col++) {
            if (!PQgetisnull(res, r, col)) {
                lua_pushlstring(L, PQgetvalue(res, r, col), (size_t)PQgetlength(res, r, col));
                lua_setfield(L, -2, PQfname(res, col));
            }
        }
        lua_rawseti(L, -2, r + 1);
    }
    const char *affected = PQcmdTuples(res);
    lua_pushinteger(L, affected && *affected ? atoll(affected) : nrows);
    lua_setfield(L, -2, "affected");
}

static int db_push(lua_State *L, struct prim_op *base)
{
    struct db_op *op = (struct db_op *)base;
    PGresult *res = op->res;
    double seconds = loop_now_mono() - op->started;
    char code[16], msg[600];
    if (!res) {
        db_count(op->sent ? "lost" : "unavailable", seconds);
        snprintf(msg, sizeof msg, "%s", op->error);
        return prim_fail(L, op->sent ? "db_lost" : "db_unavailable", msg);
    }
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(code, sizeof code, "%s", state ? state : "db_error");
        snprintf(msg, sizeof msg, "%s", primary ? primary : PQresStatus(st));
        db_count("error", seconds);
        return prim_fail(L, code, msg);
    }
    db_count("ok", seconds);
    /* a memory error here is raised by the continuation after db_free has cleared the result */
    db_push_rows(L, res);
    return 1;
}

int prim_db(lua_State *L)
{
    const char *params[DB_MAX_PARAMS];
    const char *sql = luaL_checkstring(L, 1);
    int n = lua_gettop(L) - 1;
    luaL_argcheck(L, n <= DB_MAX_PARAMS, DB_MAX_PARAMS + 2, "host.db: at most 64 parameters");
    for (int i = 0; i < n; i++) {
        int idx = i + 2;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            params[i] = NULL;
            break;
        case LUA_TBOOLEAN:
            params[i] = lua_toboolean(L, idx) ? "true" : "false";
            break;
        case LUA_TNUMBER:
        case LUA_TSTRING: {
            size_t len;
            lua_pushvalue(L,
                          idx); /* a number becomes a string in a copy, not in the caller's slot */
            params[i] = lua_tolstring(L, -1, &len);
            lua_replace(L, idx);
            if (strlen(params[i]) != len) {
                return luaL_error(L, "host.db: parameter %d holds a NUL byte", i + 1);
            }
            break;
        }
        default:
            return luaL_error(L,
                              "host.db: parameter %d is a %s (strings, numbers, booleans or nil)",
                              i + 1, luaL_typename(L, idx));
        }
    }
    struct pg_conn *conn = db_conn();
    if (!conn) {
        return prim_fail(L, "db_off",
                         "no database is configured (database.url, POSTMORTEMBOT_DATABASE_URL)");
    }
    struct host_task *t = prim_need_task(L, "db");
    struct db_op *op = (struct db_op *)prim_op_new(sizeof *op, db_cancel, db_push, db_free);
    if (!op) {
        return luaL_error(L, "out of memory");
    }
    op->started = loop_now_mono();
    op->op.task = t; /* before the query: its answer may come back at once (no connection) */
    op->query = pg_query(conn, sql, n, params, db_done, op);
    if (!op->query) {
        free(op);
        return luaL_error(L, "out of memory");
    }
    return prim_yield(L, t, &op->op, "db");
}
