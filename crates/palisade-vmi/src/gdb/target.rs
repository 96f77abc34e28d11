//! The target description (`target.xml` and the annexes it `xi:include`s): which registers the
//! stub has, their sizes and their numbers for `p`/`P`.
//!
//! A deliberately small, strict XML reader: it understands comments, processing instructions,
//! DOCTYPE, elements with quoted attributes and the five predefined entities, and returns an
//! error — never panics — on anything malformed. Registers commented out do not count; a
//! register without `regnum` takes the number after the previous one (across includes, in
//! document order), starting at 0.

/// A malformed target description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// A comment, tag or attribute value is not closed.
    #[error("unterminated {0} at byte {1}")]
    Unterminated(&'static str, usize),
    /// A tag is malformed.
    #[error("malformed tag at byte {0}")]
    BadTag(usize),
    /// A `<reg>` lacks an attribute or has an invalid one.
    #[error("register element at byte {at}: {what}")]
    BadRegister {
        /// Byte offset of the element.
        at: usize,
        /// What is wrong.
        what: String,
    },
    /// Includes nest too deeply (or loop).
    #[error("includes nest deeper than {0} levels")]
    TooDeep(usize),
}

/// One register the stub describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterInfo {
    /// Its name (`rax`, `cr3`, ...).
    pub name: String,
    /// Its size in bits.
    pub bitsize: u32,
    /// Its number for `p`/`P`.
    pub regnum: u32,
}

/// The registers of a target, in register-number order of appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetDescription {
    /// The `<architecture>` text, if any.
    pub architecture: Option<String>,
    /// The registers.
    pub registers: Vec<RegisterInfo>,
}

const MAX_DEPTH: usize = 8;

impl TargetDescription {
    /// Parses `target.xml`, fetching included annexes with `fetch`.
    pub fn load<E: From<XmlError>>(
        root: &str,
        fetch: &mut dyn FnMut(&str) -> Result<String, E>,
    ) -> Result<TargetDescription, E> {
        let mut desc = TargetDescription::default();
        let mut next = 0u32;
        desc.add(root, fetch, &mut next, 0)?;
        Ok(desc)
    }

    /// Parses one self-contained document (includes are an error).
    pub fn parse(xml: &str) -> Result<TargetDescription, XmlError> {
        TargetDescription::load(xml, &mut |_| Err(XmlError::TooDeep(0)))
    }

    fn add<E: From<XmlError>>(
        &mut self,
        xml: &str,
        fetch: &mut dyn FnMut(&str) -> Result<String, E>,
        next: &mut u32,
        depth: usize,
    ) -> Result<(), E> {
        if depth >= MAX_DEPTH {
            return Err(XmlError::TooDeep(MAX_DEPTH).into());
        }
        for item in items(xml)? {
            match item {
                Item::Architecture(a) => self.architecture = Some(a),
                Item::Include(href) => {
                    let doc = fetch(&href)?;
                    self.add(&doc, fetch, next, depth + 1)?;
                }
                Item::Reg { at, attrs } => {
                    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                    let bad = |what: String| XmlError::BadRegister { at, what };
                    let name = get("name").ok_or_else(|| bad("no name".into()))?.to_owned();
                    let bitsize = get("bitsize")
                        .and_then(|b| b.parse::<u32>().ok())
                        .filter(|&b| (1..=4096).contains(&b))
                        .ok_or_else(|| bad(format!("`{name}` has no valid bitsize")))?;
                    let regnum = match get("regnum") {
                        Some(n) => n.parse::<u32>().map_err(|_| bad(format!("`{name}` has an invalid regnum")))?,
                        None => *next,
                    };
                    *next = regnum.checked_add(1).ok_or_else(|| bad(format!("`{name}` has an invalid regnum")))?;
                    self.registers.push(RegisterInfo { name, bitsize, regnum });
                }
            }
        }
        Ok(())
    }

    /// The register called `name`.
    pub fn register(&self, name: &str) -> Option<&RegisterInfo> {
        self.registers.iter().find(|r| r.name == name)
    }
}

enum Item {
    Architecture(String),
    Include(String),
    Reg { at: usize, attrs: Vec<(String, String)> },
}

fn find(s: &str, from: usize, pat: &str) -> Option<usize> {
    s.get(from..)?.find(pat).map(|i| from + i)
}

/// The elements of interest, in document order.
fn items(xml: &str) -> Result<Vec<Item>, XmlError> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_architecture = false;
    while let Some(lt) = find(xml, i, "<") {
        if in_architecture {
            out.push(Item::Architecture(unescape(xml[i..lt].trim())));
            in_architecture = false;
        }
        let rest = &xml[lt..];
        if rest.starts_with("<!--") {
            i = find(xml, lt + 4, "-->").ok_or(XmlError::Unterminated("comment", lt))? + 3;
        } else if rest.starts_with("<?") {
            i = find(xml, lt + 2, "?>").ok_or(XmlError::Unterminated("declaration", lt))? + 2;
        } else if rest.starts_with("<!") || rest.starts_with("</") {
            i = find(xml, lt + 2, ">").ok_or(XmlError::Unterminated("tag", lt))? + 1;
        } else {
            let (name, attrs, end, self_closing) = tag(xml, lt)?;
            i = end;
            match name {
                "reg" => out.push(Item::Reg { at: lt, attrs }),
                "xi:include" => {
                    let href = attrs.into_iter().find(|(k, _)| k == "href").map(|(_, v)| v);
                    out.push(Item::Include(href.ok_or(XmlError::BadTag(lt))?));
                }
                "architecture" if !self_closing => in_architecture = true,
                _ => {}
            }
        }
    }
    Ok(out)
}

type Tag<'a> = (&'a str, Vec<(String, String)>, usize, bool);

/// Parses the start tag at `lt`: its name, attributes, the offset after it, and `/>`.
fn tag(xml: &str, lt: usize) -> Result<Tag<'_>, XmlError> {
    let b = xml.as_bytes();
    let is_name = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b':' | b'_' | b'-' | b'.');
    let mut i = lt + 1;
    let start = i;
    while i < b.len() && is_name(b[i]) {
        i += 1;
    }
    if i == start {
        return Err(XmlError::BadTag(lt));
    }
    let name = &xml[start..i];
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        match b.get(i) {
            None => return Err(XmlError::Unterminated("tag", lt)),
            Some(b'>') => return Ok((name, attrs, i + 1, false)),
            Some(b'/') if b.get(i + 1) == Some(&b'>') => return Ok((name, attrs, i + 2, true)),
            Some(&c) if is_name(c) => {
                let k0 = i;
                while i < b.len() && is_name(b[i]) {
                    i += 1;
                }
                let key = &xml[k0..i];
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                if b.get(i) != Some(&b'=') {
                    return Err(XmlError::BadTag(lt));
                }
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                let q = match b.get(i) {
                    Some(&q @ (b'"' | b'\'')) => q,
                    _ => return Err(XmlError::BadTag(lt)),
                };
                let v0 = i + 1;
                let v1 = find(xml, v0, if q == b'"' { "\"" } else { "'" })
                    .ok_or(XmlError::Unterminated("attribute value", lt))?;
                let value = &xml[v0..v1];
                if value.contains('<') {
                    return Err(XmlError::BadTag(lt));
                }
                attrs.push((key.to_owned(), unescape(value)));
                i = v1 + 1;
            }
            Some(_) => return Err(XmlError::BadTag(lt)),
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = r#"<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
  <architecture>i386:x86-64</architecture>
  <xi:include href="core.xml"/>
</target>"#;

    const CORE: &str = r#"<?xml version="1.0"?>
<!-- Copyright notice <reg name="fake" bitsize="64"/> -->
<feature name="org.gnu.gdb.i386.core">
  <flags id="eflags" size="4"><field name="CF" start="0" end="0"/></flags>
  <reg name="rax" bitsize="64" type="int64"/>
  <reg name='rbx' bitsize="64"/>
  <!-- <reg name="orig_rax" bitsize="64" regnum="57"/> -->
  <reg name="rip" bitsize="64" type="code_ptr" regnum="16"/>
  <reg name="eflags" bitsize="32" type="eflags"/>
  <reg name="st0" bitsize="80" type="i387_ext"/>
</feature>"#;

    #[test]
    fn includes_are_followed_and_comments_do_not_count() {
        let mut fetched = Vec::new();
        let d = TargetDescription::load::<XmlError>(ROOT, &mut |a| {
            fetched.push(a.to_owned());
            Ok(CORE.to_owned())
        })
        .unwrap();
        assert_eq!(fetched, ["core.xml"]);
        assert_eq!(d.architecture.as_deref(), Some("i386:x86-64"));
        let regs: Vec<_> = d.registers.iter().map(|r| (r.name.as_str(), r.regnum, r.bitsize)).collect();
        assert_eq!(regs, [("rax", 0, 64), ("rbx", 1, 64), ("rip", 16, 64), ("eflags", 17, 32), ("st0", 18, 80)]);
        assert!(d.register("fake").is_none() && d.register("orig_rax").is_none());
    }

    #[test]
    fn malformed_documents_are_errors() {
        let cases = [
            ("<!-- open", XmlError::Unterminated("comment", 0)),
            ("<reg name=\"a\" bitsize=\"64\"", XmlError::Unterminated("tag", 0)),
            ("<reg name=a/>", XmlError::BadTag(0)),
            ("<reg name=\"a\"/>", XmlError::BadRegister { at: 0, what: "`a` has no valid bitsize".into() }),
            ("<reg bitsize=\"8\"/>", XmlError::BadRegister { at: 0, what: "no name".into() }),
            ("< reg/>", XmlError::BadTag(0)),
            ("<xi:include/>", XmlError::BadTag(0)),
        ];
        for (xml, want) in cases {
            assert_eq!(TargetDescription::parse(xml), Err(want), "{xml}");
        }
    }

    #[test]
    fn include_loops_stop() {
        let r = TargetDescription::load::<XmlError>(ROOT, &mut |_| Ok(ROOT.to_owned()));
        assert_eq!(r, Err(XmlError::TooDeep(MAX_DEPTH)));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let seed = format!("{ROOT}{CORE}");
        for cut in 0..seed.len() {
            if let Some(s) = seed.get(..cut) {
                let _ = TargetDescription::parse(s);
            }
            if let Some(s) = seed.get(cut..) {
                let _ = TargetDescription::parse(s);
            }
        }
        let _ = TargetDescription::parse("<\u{e9}a='\u{e9}'/><a b = 'x' / >");
    }
}
