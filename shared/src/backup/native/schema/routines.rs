//! Functions, procedures and aggregates.

use super::*;

impl Reader<'_> {
    /// Functions, procedures and aggregates (plain, ordered-set, hypothetical-set, moving).
    pub(super) async fn functions(&mut self) -> Result<()> {
        let sql = format!(
            "select p.oid, p.prokind::text, p.pronamespace, format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
               case when p.prokind <> 'a' then pg_get_functiondef(p.oid) end,
               (select format(E'CREATE AGGREGATE %I.%I(%s) (\\n    %s\\n);',
                   n.nspname, p.proname, coalesce(nullif(pg_get_function_arguments(p.oid), ''), '*'), concat_ws(E',\\n    ',
                   'SFUNC = ' || a.aggtransfn::regproc, 'STYPE = ' || format_type(a.aggtranstype, null),
                   'SSPACE = ' || nullif(a.aggtransspace, 0),
                   'FINALFUNC = ' || nullif(a.aggfinalfn, 0)::regproc,
                   case when a.aggfinalextra then 'FINALFUNC_EXTRA' end,
                   case when a.aggfinalfn <> 0 then 'FINALFUNC_MODIFY = ' || case a.aggfinalmodify when 'r' then 'READ_ONLY' when 's' then 'SHAREABLE' else 'READ_WRITE' end end,
                   'COMBINEFUNC = ' || nullif(a.aggcombinefn, 0)::regproc,
                   'SERIALFUNC = ' || nullif(a.aggserialfn, 0)::regproc,
                   'DESERIALFUNC = ' || nullif(a.aggdeserialfn, 0)::regproc,
                   'INITCOND = ' || quote_literal(a.agginitval),
                   'MSFUNC = ' || nullif(a.aggmtransfn, 0)::regproc,
                   'MINVFUNC = ' || nullif(a.aggminvtransfn, 0)::regproc,
                   'MSTYPE = ' || format_type(nullif(a.aggmtranstype, 0), null),
                   'MSSPACE = ' || nullif(a.aggmtransspace, 0),
                   'MFINALFUNC = ' || nullif(a.aggmfinalfn, 0)::regproc,
                   case when a.aggmfinalextra then 'MFINALFUNC_EXTRA' end,
                   case when a.aggmfinalfn <> 0 then 'MFINALFUNC_MODIFY = ' || case a.aggmfinalmodify when 'r' then 'READ_ONLY' when 's' then 'SHAREABLE' else 'READ_WRITE' end end,
                   'MINITCOND = ' || quote_literal(a.aggminitval),
                   'SORTOP = ' || (select format('OPERATOR(%I.%s)', on_.nspname, o.oprname) from pg_operator o
                                    join pg_namespace on_ on on_.oid = o.oprnamespace where o.oid = a.aggsortop),
                   case when a.aggkind = 'h' then 'HYPOTHETICAL' end,
                   case p.proparallel when 's' then 'PARALLEL = safe' when 'r' then 'PARALLEL = restricted' end))
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
