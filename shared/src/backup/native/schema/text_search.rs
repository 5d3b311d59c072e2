//! Text search parsers, templates, dictionaries and configurations (a Django app's
//! `french_unaccent`, say), written as pg_dump writes them.

use super::*;

impl Reader<'_> {
    pub(super) async fn text_search(&mut self) -> Result<()> {
        let sql = format!(
            "select {PG_TS_PARSER}::oid, p.oid, format('%I.%I', n.nspname, p.prsname), n.oid,
               format(E'CREATE TEXT SEARCH PARSER %I.%I (\\n    START = %s,\\n    GETTOKEN = %s,\\n    END = %s,\\n    LEXTYPES = %s%s );',
                 n.nspname, p.prsname, p.prsstart::regproc, p.prstoken::regproc, p.prsend::regproc, p.prslextype::regproc,
                 case when p.prsheadline <> 0 then format(E',\\n    HEADLINE = %s', p.prsheadline::regproc) end)
             from pg_ts_parser p join pg_namespace n on n.oid = p.prsnamespace where p.oid >= {FIRST_NORMAL_OID}
             union all
             select {PG_TS_TEMPLATE}, t.oid, format('%I.%I', n.nspname, t.tmplname), n.oid,
               format(E'CREATE TEXT SEARCH TEMPLATE %I.%I (\\n    %sLEXIZE = %s );', n.nspname, t.tmplname,
                 case when t.tmplinit <> 0 then format(E'INIT = %s,\\n    ', t.tmplinit::regproc) end, t.tmpllexize::regproc)
             from pg_ts_template t join pg_namespace n on n.oid = t.tmplnamespace where t.oid >= {FIRST_NORMAL_OID}
             union all
             select {PG_TS_DICT}, d.oid, format('%I.%I', n.nspname, d.dictname), n.oid,
               format(E'CREATE TEXT SEARCH DICTIONARY %I.%I (\\n    TEMPLATE = %I.%I%s );', n.nspname, d.dictname,
                 tn.nspname, t.tmplname, E',\\n    ' || d.dictinitoption)
             from pg_ts_dict d join pg_namespace n on n.oid = d.dictnamespace
             join pg_ts_template t on t.oid = d.dicttemplate join pg_namespace tn on tn.oid = t.tmplnamespace
             where d.oid >= {FIRST_NORMAL_OID}
             union all
             select {PG_TS_CONFIG}, c.oid, format('%I.%I', n.nspname, c.cfgname), n.oid,
               format(E'CREATE TEXT SEARCH CONFIGURATION %I.%I (\\n    PARSER = %I.%I );', n.nspname, c.cfgname, pn.nspname, p.prsname)
               || coalesce((select string_agg(format(E'\\nALTER TEXT SEARCH CONFIGURATION %I.%I ADD MAPPING FOR %s WITH %s;',
                              n.nspname, c.cfgname, m.token, m.dicts), '' order by m.tokentype)
                            from (select m.maptokentype tokentype,
                                    (select t.alias from ts_token_type(c.cfgparser) t where t.tokid = m.maptokentype) token,
                                    string_agg(m.mapdict::regdictionary::text, ', ' order by m.mapseqno) dicts
                                  from pg_ts_config_map m where m.mapcfg = c.oid group by m.maptokentype) m), '')
             from pg_ts_config c join pg_namespace n on n.oid = c.cfgnamespace
             join pg_ts_parser p on p.oid = c.cfgparser join pg_namespace pn on pn.oid = p.prsnamespace
             where c.oid >= {FIRST_NORMAL_OID}
             order by 3"
        );
        for r in self.query("text search", &sql).await? {
            let (class, oid, name, nsp, sql): (u32, u32, String, u32, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            let (kind, rank) = match class {
                PG_TS_PARSER => ("text search parser", 46),
                PG_TS_TEMPLATE => ("text search template", 46),
                PG_TS_DICT => ("text search dictionary", 47),
                _ => ("text search configuration", 48),
            };
            self.push(
                Node::new(Section::PreData, rank, kind, format!("{kind} {name}"), sql)
                    .keys([ObjKey(class, oid)])
                    .needs([ObjKey(PG_NAMESPACE, nsp)]),
            );
        }
        Ok(())
    }
}
