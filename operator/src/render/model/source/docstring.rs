//! Docstrings: descriptions, and the `Inputs:`/`Outputs:` sections that declare tensors.
//!
//! ```text
//! def predict(self, body):
//!     """Classifies iris flowers.                      ← summary: the operation's description
//!
//!     Inputs:
//!         measurements (FP32[-1, 4]): sepal and petal  ← name (DATATYPE[shape]): description
//!             lengths and widths, in cm.               ← continuation (indented deeper)
//!         scale (FP32[1], optional): a unit factor.    ← `, optional`: may be left out
//!     Outputs:
//!         species (INT64[-1]): the predicted class.
//!     """
//! ```
//!
//! A section starts at a line that is exactly `Inputs:` or `Outputs:` and holds the lines indented
//! deeper than it. Datatypes are the Open Inference Protocol's (`BOOL`, `UINT8`…`UINT64`,
//! `INT8`…`INT64`, `FP16`, `FP32`, `FP64`, `BYTES`, any case); a shape lists its dimensions, `-1`
//! for any size, `[]` for a scalar. The type may be left out (`name: description`) only for an
//! MLServer `@decode_args` parameter whose type hint gives it.

use super::{At, ProblemKind, SourceProblem};
use crate::crd::Datatype;
use ruff_python_ast::{Expr, Stmt};
use ruff_text_size::Ranged;
use tracing::instrument;

/// A declared tensor's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TensorType {
    pub datatype: Datatype,
    pub shape: Vec<i64>,
    pub optional: bool,
}

/// One `name (TYPE): description` line (and its continuation lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub name: String,
    pub line: usize,
    pub kind: Option<TensorType>,
    pub description: String,
}

/// An `Inputs:` or `Outputs:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Section {
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// A cleaned docstring (as `inspect.cleandoc`), and its sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Doc {
    lines: Vec<Line>,
    pub inputs: Option<Section>,
    pub outputs: Option<Section>,
}

const DATATYPES: [Datatype; 13] = [
    Datatype::Bool,
    Datatype::Uint8,
    Datatype::Uint16,
    Datatype::Uint32,
    Datatype::Uint64,
    Datatype::Int8,
    Datatype::Int16,
    Datatype::Int32,
    Datatype::Int64,
    Datatype::Fp16,
    Datatype::Fp32,
    Datatype::Fp64,
    Datatype::Bytes,
];

/// The OIP datatype of a name, in any case.
#[instrument(level = "trace", skip_all)]
pub(super) fn datatype(name: &str) -> Option<Datatype> {
    DATATYPES
        .iter()
        .copied()
        .find(|datatype| datatype.name().eq_ignore_ascii_case(name.trim()))
}

/// Whether `name` may name a tensor (the CRD's pattern).
#[instrument(level = "trace", skip_all)]
pub(super) fn is_tensor_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_name_char)
}

#[instrument(level = "trace", skip_all)]
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// `FP32[-1, 4]`, `BYTES[-1], optional`: a tensor's type, or why it is not one.
#[instrument(level = "trace", ret)]
pub(super) fn parse_type(text: &str) -> Result<TensorType, String> {
    let text = text.trim();
    let Some(open) = text.find('[') else {
        return Err(format!(
            "`{text}` gives no shape: write DATATYPE[dimensions], e.g. FP32[-1, 4] (-1 = any size, [] = a scalar)"
        ));
    };
    let Some(close) = text.find(']') else {
        return Err(format!("`{text}`: the shape's `]` is missing"));
    };
    let (name, dims) = (
        text.get(..open).unwrap_or(""),
        text.get(open + 1..close).unwrap_or(""),
    );
    let datatype = datatype(name).ok_or_else(|| {
        format!(
            "`{}` is not an Open Inference Protocol datatype ({})",
            name.trim(),
            DATATYPES.map(Datatype::name).join(", ")
        )
    })?;
    let mut shape = Vec::new();
    if !dims.trim().is_empty() {
        for dim in dims.split(',') {
            let value: i64 = dim.trim().parse().map_err(|_| {
                format!(
                    "`{}` in the shape [{dims}] is not a dimension (a positive size, or -1 for any)",
                    dim.trim()
                )
            })?;
            if value == 0 || value < -1 {
                return Err(format!(
                    "{value} in the shape [{dims}] is not a dimension (a positive size, or -1 for any)"
                ));
            }
            shape.push(value);
        }
    }
    if shape.len() > 8 {
        return Err(format!("rank {} is more than 8", shape.len()));
    }
    let mut optional = false;
    let rest = text.get(close + 1..).unwrap_or("").trim();
    if !rest.is_empty() {
        match rest.strip_prefix(',').map(str::trim) {
            Some(word) if word.eq_ignore_ascii_case("optional") => optional = true,
            _ => {
                return Err(format!(
                    "`{rest}` after the shape: only `, optional` may follow it"
                ))
            }
        }
    }
    Ok(TensorType {
        datatype,
        shape,
        optional,
    })
}

/// `name (TYPE): description` or `name: description`.
#[instrument(level = "trace", ret)]
pub(super) fn parse_entry(text: &str) -> Result<(String, Option<TensorType>, String), String> {
    let text = text.trim();
    let end = text.find(|c: char| !is_name_char(c)).unwrap_or(text.len());
    let expected = "expected `name (DATATYPE[shape]): description`, e.g. `measurements (FP32[-1, 4]): sepal and petal lengths in cm`";
    // A name ends before ` (` or `:`; a trailing `:` belongs to the syntax, not the name.
    let name = text.get(..end).unwrap_or("").trim_end_matches(':');
    if name.is_empty() {
        return Err(format!("`{text}`: {expected}"));
    }
    let mut rest = text.get(name.len()..).unwrap_or("").trim_start();
    let mut kind = None;
    if let Some(inner) = rest.strip_prefix('(') {
        let Some(close) = inner.rfind(')') else {
            return Err(format!("`{text}`: the type's `)` is missing; {expected}"));
        };
        kind = Some(parse_type(inner.get(..close).unwrap_or("")).map_err(|why| format!("`{name}`: {why}"))?);
        rest = inner.get(close + 1..).unwrap_or("").trim_start();
    }
    let Some(description) = rest.strip_prefix(':') else {
        return Err(format!("`{text}`: {expected}"));
    };
    Ok((name.to_string(), kind, description.trim().to_string()))
}

#[instrument(level = "trace", skip_all)]
fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// One line of a docstring: its source line, its cleaned text, and its indentation in the source
/// (the first line's is the opening quotes' column), which sections are read by.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    number: usize,
    text: String,
    indent: usize,
}

impl Doc {
    /// The docstring of a body (its first statement, a string), cleaned and with its sections.
    #[instrument(level = "trace", skip_all, err(level = "debug", Display))]
    pub(super) fn of(at: &At, body: &[Stmt]) -> Result<Option<Doc>, SourceProblem> {
        let Some(Stmt::Expr(statement)) = body.first() else {
            return Ok(None);
        };
        let Expr::StringLiteral(literal) = statement.value.as_ref() else {
            return Ok(None);
        };
        let first_line = at.line(literal.start());
        let lines = clean(literal.value.to_str(), first_line, at.column(literal.start()));
        let mut doc = Doc {
            lines,
            inputs: None,
            outputs: None,
        };
        doc.sections(at)?;
        Ok(Some(doc))
    }

    #[instrument(level = "trace", skip_all)]
    fn sections(&mut self, at: &At) -> Result<(), SourceProblem> {
        let mut index = 0;
        while let Some(header) = self.lines.get(index) {
            let title = header.text.trim();
            if title != "Inputs:" && title != "Outputs:" {
                index += 1;
                continue;
            }
            let (header_line, header_indent) = (header.number, header.indent);
            let malformed = |line: usize, reason: String| {
                at.problem_at_line(ProblemKind::MalformedDocstring, line, reason)
            };
            let mut entries: Vec<Entry> = Vec::new();
            let mut entry_indent = None;
            index += 1;
            while let Some(Line {
                number: line,
                text,
                indent: depth,
            }) = self.lines.get(index)
            {
                if text.trim().is_empty() {
                    index += 1;
                    continue;
                }
                let depth = *depth;
                if depth <= header_indent {
                    break;
                }
                let entry_depth = *entry_indent.get_or_insert(depth);
                if depth > entry_depth {
                    match entries.last_mut() {
                        Some(entry) => {
                            if !entry.description.is_empty() {
                                entry.description.push(' ');
                            }
                            entry.description.push_str(text.trim());
                        }
                        None => return Err(malformed(*line, "continuation line before any entry".into())),
                    }
                } else if depth < entry_depth {
                    return Err(malformed(
                        *line,
                        format!("{title} entries must be indented alike (this line is indented less than the first entry)"),
                    ));
                } else {
                    let (name, kind, description) =
                        parse_entry(text).map_err(|why| malformed(*line, format!("{title} entry {why}")))?;
                    entries.push(Entry {
                        name,
                        line: *line,
                        kind,
                        description,
                    });
                }
                index += 1;
            }
            if entries.is_empty() {
                return Err(malformed(
                    header_line,
                    format!("{title} lists no tensor: indent `name (DATATYPE[shape]): description` lines under it"),
                ));
            }
            let section = Some(Section {
                line: header_line,
                entries,
            });
            let slot = if title == "Inputs:" {
                &mut self.inputs
            } else {
                &mut self.outputs
            };
            if slot.is_some() {
                return Err(malformed(header_line, format!("a second {title} section")));
            }
            *slot = section;
        }
        Ok(())
    }

    /// The paragraphs before the first section or field list (`Args:`, `:param x:`…), lines of a
    /// paragraph joined with spaces.
    #[instrument(level = "trace", skip_all)]
    pub(super) fn description(&self) -> Option<String> {
        let mut paragraphs: Vec<String> = Vec::new();
        let mut current = String::new();
        for line in &self.lines {
            let trimmed = line.text.trim();
            if is_section_start(trimmed) {
                break;
            }
            if trimmed.is_empty() {
                if !current.is_empty() {
                    paragraphs.push(std::mem::take(&mut current));
                }
                continue;
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(trimmed);
        }
        if !current.is_empty() {
            paragraphs.push(current);
        }
        Some(paragraphs.join("\n\n")).filter(|text| !text.is_empty())
    }

    /// The first paragraph.
    #[instrument(level = "trace", skip_all)]
    pub(super) fn summary(&self) -> Option<String> {
        self.description()
            .and_then(|text| text.split("\n\n").next().map(str::to_string))
    }
}

/// `Args:`, `Returns:`, `Inputs:`, `:param x:`, a NumPy-style `-----` underline: where the
/// free text of a docstring ends.
#[instrument(level = "trace", skip_all)]
fn is_section_start(line: &str) -> bool {
    let title = line.trim_end_matches(':');
    let word_header = line.ends_with(':')
        && !title.is_empty()
        && title.split(' ').count() <= 2
        && title.chars().all(|c| c.is_ascii_alphabetic() || c == ' ');
    word_header
        || line.starts_with(":param")
        || line.starts_with(":return")
        || (line.len() >= 3 && line.chars().all(|c| c == '-'))
}

/// `inspect.cleandoc`: the first line stripped, the others' common indentation removed, blank
/// lines at both ends dropped; each line with its source line and indentation.
#[instrument(level = "trace", skip_all)]
fn clean(text: &str, first_line: usize, first_column: usize) -> Vec<Line> {
    let raw: Vec<String> = text
        .split('\n')
        .map(|line| line.replace('\t', "        "))
        .collect();
    let margin = raw
        .iter()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| indent(line))
        .min()
        .unwrap_or(0);
    let mut lines: Vec<Line> = raw
        .iter()
        .enumerate()
        .map(|(index, line)| Line {
            number: first_line + index,
            text: if index == 0 {
                line.trim().to_string()
            } else {
                line.get(margin..).unwrap_or("").trim_end().to_string()
            },
            indent: if index == 0 { first_column } else { indent(line) },
        })
        .collect();
    while lines.last().is_some_and(|line| line.text.trim().is_empty()) {
        lines.pop();
    }
    let leading = lines
        .iter()
        .take_while(|line| line.text.trim().is_empty())
        .count();
    lines.drain(..leading);
    lines
}
