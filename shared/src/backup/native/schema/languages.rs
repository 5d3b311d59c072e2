//! Procedural languages, transforms, conversions and access methods: what extensions usually
//! bring, when made by hand.

use super::*;

impl Reader<'_> {
    pub(super) async fn languages_and_methods(&mut self) -> Result<()> {
        let sql = format!(
            "select {PG_LANGUAGE}::oid, l.oid, quote_ident(l.lanname), 0::oid, 40,
               format('CREATE %sPROCEDURAL LANGUAGE %I HANDLER %s%s%s;', case when l.lanpltrusted then 'TRUSTED ' end, l.lanname,
                 l.lanplcallfoid::regproc, ' INLINE ' || nullif(l.laninline, 0)::regproc, ' VALIDATOR ' || nullif(l.lanvalidator, 0)::regproc)
             from pg_language l where l.oid >= {FIRST_NORMAL_OID}
             union all
             select {PG_AM}, a.oid, quote_ident(a.amname), 0, 41,
               format('CREATE ACCESS METHOD %I TYPE %s HANDLER %s;', a.amname, case a.amtype when 't' then 'TABLE' else 'INDEX' end, a.amhandler)
             from pg_am a where a.oid >= {FIRST_NORMAL_OID}
             union all
             select {PG_CONVERSION}, c.oid, format('%I.%I', n.nspname, c.conname), n.oid, 41,
               format('CREATE %sCONVERSION %I.%I FOR %L TO %L FROM %s;', case when c.condefault then 'DEFAULT ' end, n.nspname, c.conname,
                 pg_encoding_to_char(c.conforencoding), pg_encoding_to_char(c.contoencoding), c.conproc)
             from pg_conversion c join pg_namespace n on n.oid = c.connamespace where c.oid >= {FIRST_NORMAL_OID}
             union all
             select {PG_TRANSFORM}, t.oid, format('for %s language %I', format_type(t.trftype, null), l.lanname), 0, 41,
               format('CREATE TRANSFORM FOR %s LANGUAGE %I (%s);', format_type(t.trftype, null), l.lanname,
                 concat_ws(', ', 'FROM SQL WITH FUNCTION ' || nullif(t.trffromsql, 0)::regprocedure,
                   'TO SQL WITH FUNCTION ' || nullif(t.trftosql, 0)::regprocedure))
             from pg_transform t join pg_language l on l.oid = t.trflang where t.oid >= {FIRST_NORMAL_OID}
             order by 1, 3"
        );
        for r in self.query("languages, access methods, conversions and transforms", &sql).await? {
            let (class, oid, name, nsp, rank, sql): (u32, u32, String, u32, i32, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let kind = match class {
                PG_LANGUAGE => "language",
                PG_AM => "access method",
                PG_CONVERSION => "conversion",
                _ => "transform",
            };
            let node = Node::new(Section::PreData, rank as u32, kind, format!("{kind} {name}"), sql)
                .keys([ObjKey(class, oid)]);
            self.push(if nsp == 0 { node } else { node.needs([ObjKey(PG_NAMESPACE, nsp)]) });
        }
        Ok(())
    }
}
