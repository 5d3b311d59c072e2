//! Operators, operator families and operator classes (outside extensions), as pg_dump writes
//! them: a family first, then its classes (each naming its family), then the family's loose
//! members.

use super::*;

impl Reader<'_> {
    pub(super) async fn operators(&mut self) -> Result<()> {
        // A shell (no function) is made by a COMMUTATOR or NEGATOR clause naming it: not written.
        let sql = format!(
            "select o.oid, format('%I.%s(%s, %s)', n.nspname, o.oprname, coalesce(format_type(nullif(o.oprleft, 0), null), 'NONE'),
                 coalesce(format_type(nullif(o.oprright, 0), null), 'NONE')), n.oid,
               format(E'CREATE OPERATOR %I.%s (\\n    %s\\n);', n.nspname, o.oprname, concat_ws(E',\\n    ',
                 'FUNCTION = ' || o.oprcode::regproc,
                 'LEFTARG = ' || format_type(nullif(o.oprleft, 0), null),
                 'RIGHTARG = ' || format_type(nullif(o.oprright, 0), null),
                 'COMMUTATOR = ' || (select format('OPERATOR(%I.%s)', cn.nspname, c.oprname) from pg_operator c
                                      join pg_namespace cn on cn.oid = c.oprnamespace where c.oid = o.oprcom),
                 'NEGATOR = ' || (select format('OPERATOR(%I.%s)', cn.nspname, c.oprname) from pg_operator c
                                   join pg_namespace cn on cn.oid = c.oprnamespace where c.oid = o.oprnegate),
                 'RESTRICT = ' || nullif(o.oprrest, 0)::regproc,
                 'JOIN = ' || nullif(o.oprjoin, 0)::regproc,
                 case when o.oprcanhash then 'HASHES' end,
                 case when o.oprcanmerge then 'MERGES' end))
             from pg_operator o join pg_namespace n on n.oid = o.oprnamespace
             where o.oid >= {FIRST_NORMAL_OID} and o.oprcode <> 0 order by 2"
        );
        for r in self.query("operators", &sql).await? {
            let (oid, name, nsp, sql): (u32, String, u32, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            self.push(
                Node::new(Section::PreData, 43, "operator", format!("operator {name}"), sql)
                    .keys([ObjKey(PG_OPERATOR, oid)])
                    .needs([ObjKey(PG_NAMESPACE, nsp)]),
            );
        }

        // Members: `OPERATOR n op(left,right) [FOR ORDER BY family]` and `FUNCTION n (left,
        // right) f(args)`, each with its catalog key and the class (`i`) or family (`a`, a
        // loose member) it belongs to.
        let members = format!(
            "select ao.oid, {PG_AMOP}::oid cls, d.refclassid, d.refobjid, ao.amopfamily fam, 1 k, ao.amopstrategy num,
               format('OPERATOR %s %s%s', ao.amopstrategy, ao.amopopr::regoperator,
                 case when ao.amoppurpose = 'o' then (select format(' FOR ORDER BY %I.%I', sn.nspname, sf.opfname)
                   from pg_opfamily sf join pg_namespace sn on sn.oid = sf.opfnamespace where sf.oid = ao.amopsortfamily) end) m
             from pg_amop ao join pg_depend d on d.classid = {PG_AMOP} and d.objid = ao.oid and d.deptype in ('i', 'a')
               and d.refclassid in ({PG_OPCLASS}, {PG_OPFAMILY})
             union all
             select ap.oid, {PG_AMPROC}, d.refclassid, d.refobjid, ap.amprocfamily, 2, ap.amprocnum,
               format('FUNCTION %s (%s, %s) %s', ap.amprocnum, format_type(ap.amproclefttype, null),
                 format_type(ap.amprocrighttype, null), ap.amproc::regprocedure)
             from pg_amproc ap join pg_depend d on d.classid = {PG_AMPROC} and d.objid = ap.oid and d.deptype in ('i', 'a')
               and d.refclassid in ({PG_OPCLASS}, {PG_OPFAMILY})"
        );
        let sql = format!(
            "with m as ({members})
             select {PG_OPFAMILY}::oid, f.oid, format('%I.%I USING %I', n.nspname, f.opfname, am.amname), n.oid, 0::oid,
               format('CREATE OPERATOR FAMILY %I.%I USING %I;', n.nspname, f.opfname, am.amname)
                 || coalesce(format(E'\\nALTER OPERATOR FAMILY %I.%I USING %I ADD\\n    ', n.nspname, f.opfname, am.amname)
                      || (select string_agg(m.m, E',\\n    ' order by m.k, m.num, m.m) from m
                          where m.refclassid = {PG_OPFAMILY} and m.refobjid = f.oid) || ';', ''),
               coalesce((select array_agg(m.oid) from m where m.refclassid = {PG_OPFAMILY} and m.refobjid = f.oid), '{{}}'),
               coalesce((select array_agg(m.cls) from m where m.refclassid = {PG_OPFAMILY} and m.refobjid = f.oid), '{{}}')
             from pg_opfamily f join pg_namespace n on n.oid = f.opfnamespace join pg_am am on am.oid = f.opfmethod
             where f.oid >= {FIRST_NORMAL_OID}
             union all
             select {PG_OPCLASS}, c.oid, format('%I.%I USING %I', n.nspname, c.opcname, am.amname), n.oid, c.opcfamily,
               format(E'CREATE OPERATOR CLASS %I.%I\\n    %sFOR TYPE %s USING %I FAMILY %I.%I AS\\n    %s;',
                 n.nspname, c.opcname, case when c.opcdefault then 'DEFAULT ' end, format_type(c.opcintype, null), am.amname,
                 fn.nspname, f.opfname,
                 concat_ws(E',\\n    ', (select string_agg(m.m, E',\\n    ' order by m.k, m.num, m.m) from m where m.refclassid = {PG_OPCLASS} and m.refobjid = c.oid),
                   -- Nothing else: a STORAGE of the input type, a no-op (as pg_dump writes it).
                   'STORAGE ' || format_type(coalesce(nullif(c.opckeytype, 0), c.opcintype), null))),
               coalesce((select array_agg(m.oid) from m where m.refclassid = {PG_OPCLASS} and m.refobjid = c.oid), '{{}}'),
               coalesce((select array_agg(m.cls) from m where m.refclassid = {PG_OPCLASS} and m.refobjid = c.oid), '{{}}')
             from pg_opclass c join pg_namespace n on n.oid = c.opcnamespace join pg_am am on am.oid = c.opcmethod
             join pg_opfamily f on f.oid = c.opcfamily join pg_namespace fn on fn.oid = f.opfnamespace
             where c.oid >= {FIRST_NORMAL_OID}
             order by 1 desc, 3"
        );
        for r in self.query("operator families and classes", &sql).await? {
            let (class, oid, name, nsp, family, sql): (u32, u32, String, u32, u32, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            let (member_oids, member_classes): (Vec<u32>, Vec<u32>) = (r.get(6), r.get(7));
            let kind = if class == PG_OPFAMILY { "operator family" } else { "operator class" };
            let mut node = Node::new(Section::PreData, 45, kind, format!("{kind} {name}"), sql)
                .keys([ObjKey(class, oid)])
                .keys(member_classes.into_iter().zip(member_oids).map(|(c, o)| ObjKey(c, o)))
                .needs([ObjKey(PG_NAMESPACE, nsp)]);
            if family != 0 {
                node = node.needs([ObjKey(PG_OPFAMILY, family)]);
            }
            self.push(node);
        }
        Ok(())
    }
}
