//! Publications (Debezium, DMS, logical replicas), with their tables and schemas, after the
//! data as pg_dump writes them.

use super::*;

impl Reader<'_> {
    pub(super) async fn publications(&mut self) -> Result<()> {
        let sql = "select p.oid, quote_ident(p.pubname),
               format('CREATE PUBLICATION %I%s WITH (publish = %L%s);', p.pubname,
                 case when p.puballtables then ' FOR ALL TABLES' end,
                 concat_ws(', ', case when p.pubinsert then 'insert' end, case when p.pubupdate then 'update' end,
                   case when p.pubdelete then 'delete' end, case when p.pubtruncate then 'truncate' end),
                 case when p.pubviaroot then ', publish_via_partition_root = true' end)
             from pg_publication p order by 2";
        for r in self.query("publications", sql).await? {
            let (oid, name, sql): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
            self.push(
                Node::new(Section::PostData, 175, "publication", format!("publication {name}"), sql)
                    .keys([ObjKey(PG_PUBLICATION, oid)]),
            );
        }
        // Row filters and column lists came with PostgreSQL 15, publications of whole schemas too.
        let since_15 = self.server_version().await? >= 150_000;
        let (columns, filter) = if since_15 {
            (
                "' (' || (select string_agg(quote_ident(a.attname), ', ' order by x.n)
                   from unnest(pr.prattrs::int2[]) with ordinality x(attnum, n)
                   join pg_attribute a on a.attrelid = pr.prrelid and a.attnum = x.attnum) || ')'",
                "' WHERE (' || pg_get_expr(pr.prqual, pr.prrelid) || ')'",
            )
        } else {
            ("''", "''")
        };
        let mut sql = format!(
            "select {PG_PUBLICATION_REL}::oid, pr.oid, pr.prpubid, {PG_CLASS}::oid, pr.prrelid,
               format('ALTER PUBLICATION %I ADD TABLE ONLY %s%s%s;', p.pubname, pr.prrelid::regclass, {columns}, {filter})
             from pg_publication_rel pr join pg_publication p on p.oid = pr.prpubid"
        );
        if since_15 {
            sql.push_str(&format!(
                " union all
                 select {PG_PUBLICATION_NAMESPACE}, pn.oid, pn.pnpubid, {PG_NAMESPACE}, pn.pnnspid,
                   format('ALTER PUBLICATION %I ADD TABLES IN SCHEMA %I;', p.pubname, n.nspname)
                 from pg_publication_namespace pn join pg_publication p on p.oid = pn.pnpubid
                 join pg_namespace n on n.oid = pn.pnnspid"
            ));
        }
        sql.push_str(" order by 6");
        for r in self.query("publication members", &sql).await? {
            let (class, oid, publication, member_class, member, sql): (u32, u32, u32, u32, u32, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            self.push(
                Node::extra(
                    Section::PostData,
                    176,
                    sql.trim_end_matches(';').to_lowercase(),
                    sql,
                    ObjKey(PG_PUBLICATION, publication),
                )
                .keys([ObjKey(class, oid)])
                .needs([ObjKey(member_class, member)]),
            );
        }
        Ok(())
    }
}
