//! Comments, owners and privileges: statements on objects other nodes create.

use super::*;

impl Reader<'_> {
    /// `COMMENT ON …` for every commented object this dump creates (and `public`).
    pub(super) async fn comments(&mut self) -> Result<()> {
        let sql = format!(
            "select d.classoid, d.objoid,
                     case when d.classoid = {PG_PROC} then upper(i.type) || ' ' || {routine}
                          when i.type = 'domain constraint' then
                            (select format('CONSTRAINT %I ON DOMAIN %s', co.conname, format_type(co.contypid, null)) from pg_constraint co where co.oid = d.objoid)
                          when i.type = 'table constraint' then 'CONSTRAINT ' || i.identity
                          when i.type = 'composite type' then 'TYPE ' || i.identity
                          when i.type = 'statistics object' then 'STATISTICS ' || i.identity
                          when i.type like '% column' then 'COLUMN ' || i.identity
                          else replace(upper(i.type), 'FOREIGN-DATA', 'FOREIGN DATA') || ' ' || i.identity end,
                     quote_literal(d.description)
                   from pg_description d, lateral pg_identify_object(d.classoid, d.objoid, d.objsubid) i
                   where d.classoid <> 'pg_database'::regclass order by 3",
            routine = routine_identity("d.objoid", true)
        );
        let rows = self.query("comments", &sql).await?;
        self.extras(rows, 190, "comment on", |target, text| format!("COMMENT ON {target} IS {text};"))
    }

    /// `ALTER … OWNER TO` for every owned object this dump creates (but large objects': their
    /// part writes them).
    pub(super) async fn owners(&mut self, sequences: &HashMap<u32, Sequence>) -> Result<()> {
        let sql = format!(
            "select x.c, x.o,
               case when i.type = 'composite type' then 'TYPE ' || i.identity
                    when i.type = 'statistics object' then 'STATISTICS ' || i.identity
                    when x.c = {PG_PROC} then upper(i.type) || ' ' || {routine}
                    else replace(upper(i.type), 'FOREIGN-DATA', 'FOREIGN DATA') || ' ' || i.identity end,
               quote_ident(pg_get_userbyid(x.owner))
             from (select {PG_CLASS}::oid c, oid o, relowner owner from pg_class where relkind in ('r', 'p', 'v', 'm', 'S', 'f')
                   union all select {PG_TYPE}, t.oid, t.typowner from pg_type t left join pg_class c on c.oid = t.typrelid
                     where t.typtype in ('e', 'r', 'd') or (t.typtype = 'c' and c.relkind = 'c')
                   union all select {PG_PROC}, oid, proowner from pg_proc
                   union all select {PG_NAMESPACE}, oid, nspowner from pg_namespace
                   union all select {PG_STATISTIC_EXT}, oid, stxowner from pg_statistic_ext
                   union all select {PG_COLLATION}, oid, collowner from pg_collation
                   union all select {PG_TS_CONFIG}, oid, cfgowner from pg_ts_config
                   union all select {PG_TS_DICT}, oid, dictowner from pg_ts_dict
                   union all select {PG_FOREIGN_DATA_WRAPPER}, oid, fdwowner from pg_foreign_data_wrapper
                   union all select {PG_FOREIGN_SERVER}, oid, srvowner from pg_foreign_server
                   union all select {PG_PUBLICATION}, oid, pubowner from pg_publication
                   union all select {PG_EVENT_TRIGGER}, oid, evtowner from pg_event_trigger
                   union all select {PG_OPERATOR}, oid, oprowner from pg_operator where oprcode <> 0
                   union all select {PG_OPFAMILY}, oid, opfowner from pg_opfamily
                   union all select {PG_OPCLASS}, oid, opcowner from pg_opclass
                   union all select {PG_LANGUAGE}, oid, lanowner from pg_language
                   union all select {PG_CONVERSION}, oid, conowner from pg_conversion) x,
               lateral pg_identify_object(x.c, x.o, 0) i
             order by 3",
            routine = routine_identity("x.o", true)
        );
        let rows = self.query("owners", &sql).await?;
        // Sequences that belong to a column change owner with their table; `public` keeps the
        // owner a new database gives it unless it was changed.
        let rows: Vec<Row> = rows
            .into_iter()
            .filter(|r| {
                let (class, target, owner): (u32, Option<String>, String) = (r.get(0), r.get(2), r.get(3));
                let sequence = class == PG_CLASS
                    && sequences.get(&r.get(1)).is_some_and(|s| s.owned || s.identity.is_some());
                let default_public =
                    target.as_deref() == Some("SCHEMA public") && owner == "pg_database_owner";
                !sequence && !default_public
            })
            .collect();
        self.extras(rows, 170, "owner of", |target, owner| format!("ALTER {target} OWNER TO {owner};"))
    }

    /// For each row `(class, oid, target, value)` naming an object this dump creates (or the
    /// schema `public`, which every database has), a post-data statement `render(target, value)`.
    pub(super) fn extras(
        &mut self,
        rows: Vec<Row>,
        rank: u32,
        what: &str,
        render: impl Fn(&str, &str) -> String,
    ) -> Result<()> {
        let created = self.created();
        for r in rows {
            let (class, oid, target, value): (u32, u32, Option<String>, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let key = ObjKey(class, oid);
            let Some(target) = target else {
                // The server cannot name an object this dump creates: its comment, owner or
                // grants would be lost, so the backup fails rather than skip them.
                if self.creates(&created, key) {
                    return Err(Error::Unsupported {
                        database: self.database.to_owned(),
                        reason: format!(
                            "cannot write the {what} catalog object {class}/{oid}: the server names no target for it; use engine pg_dump"
                        ),
                    });
                }
                continue;
            };
            let public = class == PG_NAMESPACE && target == "SCHEMA public";
            if !(self.creates(&created, key) || public) {
                continue;
            }
            let sql = render(&target, &value);
            self.push(Node::extra(
                Section::PostData,
                rank,
                format!("{what} {}", target.to_lowercase()),
                sql,
                key,
            ));
        }
        Ok(())
    }

    /// Does this dump create `key` (one of `created`, or a large object when they are dumped)?
    fn creates(&self, created: &HashSet<ObjKey>, key: ObjKey) -> bool {
        created.contains(&key) || (key.0 == PG_LARGEOBJECT && self.large_objects)
    }

    /// The catalog objects this dump creates (large objects aside).
    pub(super) fn created(&self) -> HashSet<ObjKey> {
        self.nodes.iter().filter(|n| n.kind.is_some()).flat_map(|n| n.keys.iter().copied()).collect()
    }

    /// GRANT and REVOKE relative to each object's default privileges, and default privileges.
    pub(super) async fn privileges(&mut self) -> Result<()> {
        let sql = format!(
            "with objs0 as (
               select {PG_CLASS}::oid c, c.oid o, 0 sub, case c.relkind when 'S' then 's' else 'r' end::\"char\" t, c.relowner owner, c.relacl acl
                 from pg_class c where c.relacl is not null and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
               union all select {PG_CLASS}, a.attrelid, a.attnum, 'c', c.relowner, a.attacl
                 from pg_attribute a join pg_class c on c.oid = a.attrelid where a.attacl is not null and not a.attisdropped
               union all select {PG_NAMESPACE}, oid, 0, 'n', nspowner, coalesce(nspacl, acldefault('n', nspowner)) from pg_namespace
                 where nspacl is not null or nspname = 'public'
               union all select {PG_PROC}, oid, 0, 'f', proowner, proacl from pg_proc where proacl is not null
               union all select {PG_TYPE}, oid, 0, 'T', typowner, typacl from pg_type where typacl is not null
               union all select {PG_LARGEOBJECT}, oid, 0, 'L', lomowner, lomacl from pg_largeobject_metadata where lomacl is not null
               union all select {PG_FOREIGN_DATA_WRAPPER}, oid, 0, 'F', fdwowner, fdwacl from pg_foreign_data_wrapper where fdwacl is not null
               union all select {PG_FOREIGN_SERVER}, oid, 0, 'S', srvowner, srvacl from pg_foreign_server where srvacl is not null
               union all select {PG_LANGUAGE}, oid, 0, 'l', lanowner, lanacl from pg_language where lanacl is not null
             ), objs as (
               -- Built-in objects and extensions' start from the privileges initdb or CREATE
               -- EXTENSION gave them (pg_init_privs), as pg_dump compares them.
               select o.*, ip.initprivs init, ip.objoid is not null or o.o < {FIRST_NORMAL_OID}
                 or exists (select 1 from pg_depend d where d.classid = o.c and d.objid = o.o and d.deptype = 'e') initial
               from objs0 o left join pg_init_privs ip on ip.classoid = o.c and ip.objoid = o.o and ip.objsubid = o.sub
             ), actual as (
               select o.c, o.o, o.sub, a.grantee, a.privilege_type, a.is_grantable from objs o, aclexplode(o.acl) a
             ), defaults as (
               select o.c, o.o, o.sub, a.grantee, a.privilege_type, a.is_grantable from objs o,
                 aclexplode(coalesce(o.init, case when o.t <> 'c' then acldefault(o.t, o.owner) end)) a
               -- What a new database's `public` has, and the target starts from.
               union all select o.c, o.o, 0, 0::oid, 'USAGE', false from objs o
               where o.c = {PG_NAMESPACE} and o.o = 'public'::regnamespace
             ), diff as (
               select 'REVOKE' verb, * from (select * from defaults except select * from actual) r
               union all select 'GRANT', * from (select * from actual except select * from defaults) g
             )
             select d.c, d.o,
               case when d.c = {PG_CLASS} and (select relkind from pg_class where oid = d.o) = 'S' then 'SEQUENCE '
                    when d.c = {PG_CLASS} then 'TABLE ' when d.c = {PG_NAMESPACE} then 'SCHEMA '
                    when d.c = {PG_PROC} then 'ROUTINE ' when d.c = {PG_TYPE} then 'TYPE '
                    when d.c = {PG_FOREIGN_DATA_WRAPPER} then 'FOREIGN DATA WRAPPER ' when d.c = {PG_FOREIGN_SERVER} then 'FOREIGN SERVER '
                    when d.c = {PG_LANGUAGE} then 'LANGUAGE '
                    else 'LARGE OBJECT ' end
                 || case when d.c = {PG_PROC} then {routine} else i.identity end,
               d.verb || ' ' || string_agg(d.privilege_type || coalesce('(' || (select quote_ident(attname) from pg_attribute
                   where attrelid = d.o and attnum = d.sub and d.sub > 0) || ')', ''), ', ' order by d.privilege_type),
               case when d.grantee = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(d.grantee)) end,
               d.is_grantable,
               bool_or((select o.initial from objs o where o.c = d.c and o.o = d.o and o.sub = d.sub))
             from diff d, lateral pg_identify_object(d.c, d.o, 0) i
             group by d.c, d.o, d.sub, i.identity, d.verb, d.grantee, d.is_grantable
             -- Grantees in the ACL's own order (as pg_dump writes them), so dumps diff cleanly.
             order by 3, d.verb desc,
               (select min(x.ord) from objs o2, aclexplode(o2.acl) with ordinality x(grantor, grantee, privilege_type, is_grantable, ord)
                where o2.c = d.c and o2.o = d.o and o2.sub = d.sub and x.grantee = d.grantee), 5",
            routine = routine_identity("d.o", false)
        );
        let rows = self.query("privileges", &sql).await?;
        let created = self.created();
        for r in rows {
            let (class, oid, target, verb, grantee, grantable): (u32, u32, String, String, String, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            // A built-in object or an extension's whose privileges were changed.
            let initial: bool = r.get(6);
            let key = ObjKey(class, oid);
            if !self.creates(&created, key) && target != "SCHEMA public" && !initial {
                continue;
            }
            let sql = if verb.starts_with("REVOKE") {
                format!("{verb} ON {target} FROM {grantee};")
            } else {
                format!(
                    "{verb} ON {target} TO {grantee}{};",
                    if grantable { " WITH GRANT OPTION" } else { "" }
                )
            };
            let node = Node::extra(
                Section::PostData,
                180,
                format!("privileges on {}", target.to_lowercase()),
                sql,
                key,
            );
            if initial {
                self.push_on_extension_object(node); // CREATE EXTENSION or initdb makes the object
            } else {
                self.push(node);
            }
        }
        let sql = "with d as (
                     select da.oid, da.defaclrole role, da.defaclnamespace nsp, da.defaclobjtype t, a.grantee, a.privilege_type, a.is_grantable
                     from pg_default_acl da, aclexplode(da.defaclacl) a
                   ), base as (
                     select da.oid, da.defaclrole role, da.defaclnamespace nsp, da.defaclobjtype t, a.grantee, a.privilege_type, a.is_grantable
                     from pg_default_acl da, aclexplode(acldefault(case da.defaclobjtype when 'S' then 's' else da.defaclobjtype end, da.defaclrole)) a
                     where da.defaclnamespace = 0
                   ), diff as (
                     select 'REVOKE' verb, * from (select * from base except select * from d) r
                     union all select 'GRANT', * from (select * from d except select * from base) g
                   )
                   select format('ALTER DEFAULT PRIVILEGES FOR ROLE %I%s %s %s ON %s %s %s%s;',
                       pg_get_userbyid(role), (select ' IN SCHEMA ' || quote_ident(nspname) from pg_namespace where oid = nsp),
                       verb, string_agg(privilege_type, ', ' order by privilege_type),
                       case t when 'r' then 'TABLES' when 'S' then 'SEQUENCES' when 'f' then 'FUNCTIONS' when 'T' then 'TYPES' else 'SCHEMAS' end,
                       case verb when 'GRANT' then 'TO' else 'FROM' end,
                       case when grantee = 0 then 'PUBLIC' else quote_ident(pg_get_userbyid(grantee)) end,
                       case when is_grantable and verb = 'GRANT' then ' WITH GRANT OPTION' end),
                     nsp
                   from diff group by oid, role, nsp, t, verb, grantee, is_grantable order by 1";
        for r in self.query("default privileges", sql).await? {
            let (sql, nsp): (String, u32) = (r.get(0), r.get(1));
            self.push(Node::extra(
                Section::PostData,
                185,
                "default privileges".into(),
                sql,
                ObjKey(PG_NAMESPACE, nsp),
            ));
        }
        Ok(())
    }

    /// `ALTER DATABASE … SET` and `ALTER ROLE … IN DATABASE … SET` (as `pg_dump --create`
    /// writes them), for whichever database the restore goes into; the roles' settings only
    /// with owners (`no_owner` means roles differ there).
    pub(super) async fn database_settings(&mut self, roles: bool) -> Result<()> {
        let sql =
            "select r.rolname, c.config from pg_db_role_setting s left join pg_roles r on r.oid = s.setrole,
                     unnest(s.setconfig) with ordinality c(config, n)
                   where s.setdatabase = (select oid from pg_database where datname = current_database())
                   order by r.rolname nulls first, c.n";
        for r in self.query("database settings", sql).await? {
            let (role, config): (Option<String>, String) = (r.get(0), r.get(1));
            if role.is_some() && !roles {
                continue;
            }
            let Some(clause) = setting_clause(&config) else {
                return Err(Error::Unsupported {
                    database: self.database.to_owned(),
                    reason: format!("cannot write the database setting {config:?}"),
                });
            };
            let target = match &role {
                None => "'ALTER DATABASE ' || quote_ident(current_database())".to_owned(),
                Some(role) => format!(
                    "'ALTER ROLE {} IN DATABASE ' || quote_ident(current_database())",
                    crate::db::quote_ident(role).replace('\'', "''")
                ),
            };
            let label = match &role {
                None => format!("database setting {clause}"),
                Some(role) => format!("setting of role {role} {clause}"),
            };
            self.push(Node::statement(
                Section::PostData,
                199,
                label,
                format!("DO $backstop$BEGIN EXECUTE {target} || $setting$ {clause}$setting$; END$backstop$;"),
            ));
        }
        Ok(())
    }
}

/// Settings whose value is a list, each item its own literal (as `SET search_path TO 'a', 'b'`).
const LIST_SETTINGS: [&str; 5] = [
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
    "shared_preload_libraries",
];

/// `SET name TO 'value'` from a `pg_db_role_setting` entry `name=value`; `None` where it cannot
/// be written safely inside the dollar quotes it goes in.
fn setting_clause(config: &str) -> Option<String> {
    let (name, value) = config.split_once('=')?;
    let plain =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !plain(name) || value.contains("$setting$") || value.contains("$backstop$") {
        return None;
    }
    let literal = |v: &str| format!("'{}'", v.replace('\'', "''"));
    let items: Vec<String> = if LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        value
            .split(',')
            .map(|item| {
                let item = item.trim();
                let unquoted = item
                    .strip_prefix('"')
                    .and_then(|i| i.strip_suffix('"'))
                    .map(|i| i.replace("\"\"", "\""))
                    .unwrap_or_else(|| item.to_owned());
                literal(&unquoted)
            })
            .collect()
    } else {
        vec![literal(value)]
    };
    Some(format!("SET {name} TO {}", items.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_written_as_pg_dump_writes_them() {
        assert_eq!(setting_clause("work_mem=12MB").unwrap(), "SET work_mem TO '12MB'");
        assert_eq!(
            setting_clause("search_path=\"$user\", public, \"My Schema\"").unwrap(),
            "SET search_path TO '$user', 'public', 'My Schema'"
        );
        assert_eq!(setting_clause("myapp.tenant=it's").unwrap(), "SET myapp.tenant TO 'it''s'");
        assert_eq!(setting_clause("bad name=1"), None);
        assert_eq!(setting_clause("x=$setting$ drop"), None);
        assert_eq!(setting_clause("x=$backstop$"), None);
    }
}
