//! Foreign-data wrappers, servers and user mappings (foreign tables are relations).

use super::*;

/// `' OPTIONS (k ''v'', …)'` of an options array (SQL), empty where there are none.
pub(super) fn options_clause(column: &str) -> String {
    format!(
        "coalesce(' OPTIONS (' || (select string_agg(format('%I %L', option_name, option_value), ', ')
           from pg_options_to_table({column})) || ')', '')"
    )
}

impl Reader<'_> {
    pub(super) async fn foreign_data(&mut self) -> Result<()> {
        let sql = format!(
            "select {PG_FOREIGN_DATA_WRAPPER}::oid, w.oid, quote_ident(w.fdwname), 0::oid, 0::oid,
               format('CREATE FOREIGN DATA WRAPPER %I%s%s%s;', w.fdwname,
                 case when w.fdwhandler <> 0 then ' HANDLER ' || w.fdwhandler::regproc::text end,
                 case when w.fdwvalidator <> 0 then ' VALIDATOR ' || w.fdwvalidator::regproc::text end,
                 {wrapper_options})
             from pg_foreign_data_wrapper w where w.oid >= {FIRST_NORMAL_OID}
             union all
             select {PG_FOREIGN_SERVER}, s.oid, quote_ident(s.srvname), {PG_FOREIGN_DATA_WRAPPER}, s.srvfdw,
               format('CREATE SERVER %I%s%s FOREIGN DATA WRAPPER %I%s;', s.srvname, ' TYPE ' || quote_literal(s.srvtype),
                 ' VERSION ' || quote_literal(s.srvversion), w.fdwname, {server_options})
             from pg_foreign_server s join pg_foreign_data_wrapper w on w.oid = s.srvfdw
             union all
             -- The view shows the options only to whom may see them (the mapping's user, the
             -- server's owner), as pg_dump reads them.
             select {PG_USER_MAPPING}, u.umid, format('for %s server %I', u.usename, u.srvname), {PG_FOREIGN_SERVER}, u.srvid,
               format('CREATE USER MAPPING FOR %s SERVER %I%s;',
                 case when u.umuser = 0 then 'PUBLIC' else quote_ident(u.usename) end, u.srvname, {mapping_options})
             from pg_user_mappings u
             order by 1, 3",
            wrapper_options = options_clause("w.fdwoptions"),
            server_options = options_clause("s.srvoptions"),
            mapping_options = options_clause("u.umoptions"),
        );
        for r in self.query("foreign-data wrappers, servers and user mappings", &sql).await? {
            let (class, oid, name, on_class, on, sql): (u32, u32, String, u32, u32, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let (kind, rank) = match class {
                PG_FOREIGN_DATA_WRAPPER => ("foreign-data wrapper", 52),
                PG_FOREIGN_SERVER => ("server", 53),
                _ => ("user mapping", 54),
            };
            let node = Node::new(Section::PreData, rank, kind, format!("{kind} {name}"), sql)
                .keys([ObjKey(class, oid)]);
            self.push(if on == 0 { node } else { node.needs([ObjKey(on_class, on)]) });
        }
        Ok(())
    }
}
