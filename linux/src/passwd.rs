//! /etc/passwd and /etc/group (passwd(5), group(5)), parsed from their text: the caller
//! decides which file (the host's, or an image's read inside its root).

/// One line of a passwd file: `name:password:uid:gid:gecos:home:shell`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry<'a> {
    pub name: &'a str,
    pub uid: u32,
    /// Absent or not a number on a short or damaged line.
    pub gid: Option<u32>,
    pub home: Option<&'a str>,
}

/// One line of a group file: `name:password:gid:member,member`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry<'a> {
    pub name: &'a str,
    pub gid: u32,
    pub members: Vec<&'a str>,
}

/// The fields of each meaningful line (not blank, not a comment) with at least 3 fields.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
}

/// Every entry of a passwd file whose uid is a number.
pub fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    records(text).filter_map(|f| {
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f.get(3).and_then(|g| g.parse().ok()),
            home: f.get(5).copied(),
        })
    })
}

/// Every entry of a group file whose gid is a number.
pub fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    records(text).filter_map(|f| {
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    })
}

/// The first passwd entry of `uid`.
pub fn by_uid(text: &str, uid: u32) -> Option<PasswdEntry<'_>> {
    passwd_entries(text).find(|e| e.uid == uid)
}

/// The first passwd entry named `name`.
pub fn by_name<'a>(text: &'a str, name: &str) -> Option<PasswdEntry<'a>> {
    passwd_entries(text).find(|e| e.name == name)
}

/// The gid of the group named `name`.
pub fn gid_of(text: &str, name: &str) -> Option<u32> {
    group_entries(text).find(|g| g.name == name).map(|g| g.gid)
}

/// The gids of the groups that list `user` as a member, in file order, without repeats.
pub fn supplementary_gids(text: &str, user: &str) -> Vec<u32> {
    let mut gids = Vec::new();
    for g in group_entries(text).filter(|g| g.members.contains(&user)) {
        if !gids.contains(&g.gid) {
            gids.push(g.gid);
        }
    }
    gids
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "# comment\nroot:x:0:0:root:/root:/bin/sh\n\nwww:x:33:33::/var/www:/bin/false\nshort:x:7\nbad:x:nan:1::/:/\n";
    const GR: &str = "root:x:0:\nwww:x:33:\nadm:x:4:www, bob\nstaff:x:50:\nagain:x:4:www\n";

    #[test]
    fn passwd_lookups() {
        assert_eq!(by_uid(PW, 33).unwrap().home, Some("/var/www"));
        assert_eq!(by_uid(PW, 33).unwrap().name, "www");
        assert_eq!(by_name(PW, "root").unwrap().gid, Some(0));
        let short = by_name(PW, "short").unwrap();
        assert_eq!((short.uid, short.gid, short.home), (7, None, None));
        assert!(by_name(PW, "bad").is_none());
        assert!(by_uid(PW, 1000).is_none());
    }

    #[test]
    fn group_lookups() {
        assert_eq!(gid_of(GR, "staff"), Some(50));
        assert_eq!(gid_of(GR, "nogroup"), None);
        assert_eq!(supplementary_gids(GR, "www"), vec![4]);
        assert_eq!(supplementary_gids(GR, "bob"), vec![4]);
        assert!(supplementary_gids(GR, "root").is_empty());
    }
}
