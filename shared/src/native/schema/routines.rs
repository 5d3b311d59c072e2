//! Functions, procedures and aggregates.

use super::*;

impl Reader<'_> {
    /// Functions, procedures and (plain) aggregates.
    pub(super) async fn functions(&mut self) -> Result<()> {
        let sql = format!(
            "select p.oid, p.prokind::text, p.pronamespace, format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
               case when p.prokind <> 'a' then pg_get_functiondef(p.oid) end,
               (select format(E'CREATE AGGREGATE %I.%I(%s) (\\n    SFUNC = %s,\\n    STYPE = %s%s%s%s%s%s%s\\n);',
                   n.nspname, p.proname, coalesce(nullif(pg_get_function_arguments(p.oid), ''), '*'), a.aggtransfn::regproc, format_type(a.aggtranstype, null),
                   case when a.aggtransspace <> 0 then format(E',\\n    SSPACE = %s', a.aggtransspace) end,
                   case when a.aggfinalfn <> 0 then format(E',\\n    FINALFUNC = %s', a.aggfinalfn::regproc) end,
                   case when a.aggfinalextra then E',\\n    FINALFUNC_EXTRA' end,
                   case when a.aggcombinefn <> 0 then format(E',\\n    COMBINEFUNC = %s', a.aggcombinefn::regproc) end,
                   case when a.agginitval is not null then format(E',\\n    INITCOND = %L', a.agginitval) end,
                   case p.proparallel when 's' then E',\\n    PARALLEL = safe' when 'r' then E',\\n    PARALLEL = restricted' end)
                 from pg_aggregate a where a.aggfnoid = p.oid)
             from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where {USER_SCHEMA} order by 4"
        );
        for r in self.query("functions", &sql).await? {
            let (oid, kind, nsp, name): (u32, String, u32, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let (node_kind, rank, def): (&'static str, u32, Option<String>) = match kind.as_str() {
                "a" => ("aggregate", 42, r.get(5)),
                "p" => ("procedure", 40, r.get(4)),
                _ => ("function", 40, r.get(4)),
            };
            let def = def.unwrap_or_default();
            self.push(
                Node::new(
                    Section::PreData,
                    rank,
                    node_kind,
                    format!("{node_kind} {name}"),
                    format!("{};", def.trim_end()),
                )
                .keys([ObjKey(PG_PROC, oid)])
                .needs([ObjKey(PG_NAMESPACE, nsp)]),
            );
        }
        Ok(())
    }
}
