//! Model docs from source code: the signature a custom model's serving class declares, read
//! statically from its Python source — parsed with Ruff's parser, never imported or run.
//!
//! Three serving conventions are recognised, and a class is found by its name (`className`,
//! `module.Class`) or, without one, as the only class of the file with a `predict` method:
//!
//! - **MLRun** (`mlrun.serving.V2ModelServer` or no base class): `load()`, `predict(self, body)`;
//! - **KServe** (`kserve.Model`): `load()`, `predict(self, payload, headers=None)`, possibly
//!   `preprocess`/`postprocess`;
//! - **MLServer** (`mlserver.MLModel`): `async def predict(self, payload: InferenceRequest)`, or with
//!   `@decode_args` the parameters' type hints are the tensors (`questions: List[str]` → a BYTES
//!   input `questions` of shape `[-1]`).
//!
//! The request bodies of the first two (and of MLServer without `@decode_args`) say nothing about
//! the tensors, so the class declares them explicitly, in one of two documented forms that also
//! work on any convention: `Inputs:`/`Outputs:` sections in `predict`'s docstring
//! ([`docstring`]), or a `@kea_runtime.tensors(inputs=[...], outputs=[...])` decorator read as
//! literals ([`literal`]). The decorator wins over the docstring, the docstring over type hints;
//! docstrings also give the descriptions (class → model, `predict`'s summary → operation, entries
//! → tensors). Whatever cannot be known is a [`SourceProblem`] naming the file, the line, the
//! convention that failed and the fix.
//!
//! Hostile input is bounded: at most [`MAX_SOURCE_BYTES`], parsed and dropped on a stack sized by
//! the input (deeply nested expressions are parsed by Ruff's parser on a growing stack, and a deep
//! syntax tree is dropped recursively), and the reader itself only walks a class's own methods.

mod docstring;
mod literal;
#[cfg(test)]
mod tests;

use super::openapi::Descriptions;
use crate::crd::{Datatype, Signature, Tensor};
use docstring::{Doc, Entry, TensorType};
use ruff_python_ast::{Expr, Stmt, StmtClassDef, StmtFunctionDef};
use ruff_text_size::{Ranged, TextSize};
use std::collections::{BTreeMap, HashMap};
use tracing::instrument;

/// Larger sources are refused (a serving class is a few KiB; this bounds time and memory).
pub const MAX_SOURCE_BYTES: usize = 512 * 1024;
/// Stack per source byte for parsing and dropping the tree: a byte can open at most one level of
/// nesting (`-`, `~`), and one level needs under 200 bytes of stack in a debug build.
const STACK_PER_BYTE: usize = 256;
const BASE_STACK: usize = 1 << 20;
/// How far same-file base classes are followed for an inherited `predict`.
const MAX_BASES: usize = 8;
/// Tensors in one signature (OIP models have a handful; this bounds what a hostile file declares).
const MAX_TENSORS: usize = 256;

/// The serving convention a class follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// `load()` and `predict(self, body)`; base `mlrun.serving.V2ModelServer` or none.
    MlRun,
    /// `kserve.Model`: `predict(self, payload, headers=None)`, `preprocess`/`postprocess`.
    KServe,
    /// `mlserver.MLModel`: `async def predict(self, payload: InferenceRequest)`, or `@decode_args`.
    MlServer,
}

impl Convention {
    #[instrument(level = "trace", skip_all)]
    pub fn name(self) -> &'static str {
        match self {
            Convention::MlRun => "MLRun",
            Convention::KServe => "KServe",
            Convention::MlServer => "MLServer",
        }
    }
}

/// What a serving class declares: the same [`Signature`] a `spec.signature` gives, plus the
/// descriptions its docstrings carry.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSignature {
    /// The class read.
    pub class_name: String,
    /// Its line (1-based).
    pub line: usize,
    pub convention: Convention,
    pub signature: Signature,
    pub descriptions: Descriptions,
}

/// Which convention failed; `reason()` is the CamelCase reason of a status condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    SourceTooLarge,
    SyntaxError,
    ClassNotFound,
    NoServingClass,
    SeveralServingClasses,
    NoPredict,
    NoTensors,
    UnknownDatatype,
    MalformedDocstring,
    MalformedDecorator,
    InvalidSignature,
}

impl ProblemKind {
    #[instrument(level = "trace", skip_all)]
    pub fn reason(self) -> &'static str {
        match self {
            ProblemKind::SourceTooLarge => "SourceTooLarge",
            ProblemKind::SyntaxError => "SourceSyntaxError",
            ProblemKind::ClassNotFound => "ClassNotFound",
            ProblemKind::NoServingClass => "NoServingClass",
            ProblemKind::SeveralServingClasses => "SeveralServingClasses",
            ProblemKind::NoPredict => "NoPredictMethod",
            ProblemKind::NoTensors => "NoTensorsDeclared",
            ProblemKind::UnknownDatatype => "UnknownDatatype",
            ProblemKind::MalformedDocstring => "MalformedDocstring",
            ProblemKind::MalformedDecorator => "MalformedDecorator",
            ProblemKind::InvalidSignature => "InvalidSignature",
        }
    }
}

/// Why a source declares no usable signature: where (file, 1-based line) and why, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct SourceProblem {
    pub kind: ProblemKind,
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// Reads the signature `class_name` (`Class` or `module.Class`; `None`: the file's only serving
/// class) declares in `source`, the text of `file_name`.
#[instrument(level = "debug", skip(source), fields(bytes = source.len()), err(level = "debug", Display))]
pub fn read_signature(
    file_name: &str,
    source: &str,
    class_name: Option<&str>,
) -> Result<SourceSignature, SourceProblem> {
    let at = At::new(file_name, source);
    if source.len() > MAX_SOURCE_BYTES {
        return Err(at.problem_at_line(
            ProblemKind::SourceTooLarge,
            1,
            format!(
                "{} bytes is more than a serving class's source may have ({MAX_SOURCE_BYTES})",
                source.len()
            ),
        ));
    }
    // The tree is parsed, read and dropped on this stack.
    stacker::grow(BASE_STACK + source.len() * STACK_PER_BYTE, || {
        read_parsed(&at, source, class_name)
    })
}

/// The files that may hold `module.Class`, relative to the model's directory (`serving.py`,
/// `serving/__init__.py`; `pkg.mod.Class` → `pkg/mod.py`, `pkg/mod/__init__.py`). `None` when the
/// name has no module or a segment is not an identifier.
#[instrument(level = "trace")]
pub fn module_files(class_name: &str) -> Option<Vec<std::path::PathBuf>> {
    let (module, class) = class_name.rsplit_once('.')?;
    let identifier = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !identifier(class) || !module.split('.').all(identifier) {
        return None;
    }
    let path: std::path::PathBuf = module.split('.').collect();
    Some(vec![path.with_extension("py"), path.join("__init__.py")])
}

/// Where problems are: the file and its line starts.
struct At<'a> {
    file: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> At<'a> {
    #[instrument(level = "trace", skip_all)]
    fn new(file: &'a str, source: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|(_, byte)| *byte == b'\n')
                .map(|(index, _)| index + 1),
        );
        Self { file, line_starts }
    }

    /// 1-based line of a byte offset.
    #[instrument(level = "trace", skip_all)]
    fn line(&self, offset: TextSize) -> usize {
        let offset = offset.to_usize();
        self.line_starts.partition_point(|start| *start <= offset).max(1)
    }

    /// 0-based column (in bytes) of a byte offset.
    #[instrument(level = "trace", skip_all)]
    fn column(&self, offset: TextSize) -> usize {
        let line = self.line(offset);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        offset.to_usize().saturating_sub(start)
    }

    #[instrument(level = "trace", skip_all)]
    fn problem(&self, kind: ProblemKind, offset: TextSize, reason: impl Into<String>) -> SourceProblem {
        self.problem_at_line(kind, self.line(offset), reason)
    }

    #[instrument(level = "trace", skip_all)]
    fn problem_at_line(&self, kind: ProblemKind, line: usize, reason: impl Into<String>) -> SourceProblem {
        SourceProblem {
            kind,
            file: self.file.to_string(),
            line,
            reason: reason.into(),
        }
    }
}

#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
fn read_parsed(at: &At, source: &str, class_name: Option<&str>) -> Result<SourceSignature, SourceProblem> {
    let parsed = ruff_python_parser::parse_module(source).map_err(|error| {
        at.problem(
            ProblemKind::SyntaxError,
            error.location.start(),
            format!(
                "syntax error: {}; a serving class must be valid Python 3",
                error.error
            ),
        )
    })?;
    let body = &parsed.syntax().body;
    let imports = Imports::of(body);
    let classes: Vec<&StmtClassDef> = body
        .iter()
        .filter_map(|statement| match statement {
            Stmt::ClassDef(class) => Some(class),
            _ => None,
        })
        .collect();
    let module = Module { at, imports, classes };
    let class = module.select(class_name)?;
    module.read_class(class)
}

/// The parsed file: its imports and top-level classes.
struct Module<'a, 'b> {
    at: &'b At<'b>,
    imports: Imports,
    classes: Vec<&'a StmtClassDef>,
}

/// What the module's top-level imports bind: local name → dotted path.
#[derive(Debug, Default)]
struct Imports {
    names: HashMap<String, String>,
}

impl Imports {
    #[instrument(level = "trace", skip_all)]
    fn of(body: &[Stmt]) -> Self {
        let mut names = HashMap::new();
        for statement in body {
            match statement {
                Stmt::Import(import) => {
                    for alias in &import.names {
                        let name = alias.name.id.as_str();
                        match &alias.asname {
                            Some(local) => names.insert(local.id.to_string(), name.to_string()),
                            None => {
                                let top = name.split('.').next().unwrap_or(name);
                                names.insert(top.to_string(), top.to_string())
                            }
                        };
                    }
                }
                Stmt::ImportFrom(import) => {
                    let module = import
                        .module
                        .as_ref()
                        .map(|module| module.id.to_string())
                        .unwrap_or_default();
                    for alias in &import.names {
                        let local = alias.asname.as_ref().unwrap_or(&alias.name);
                        names.insert(local.id.to_string(), format!("{module}.{}", alias.name.id));
                    }
                }
                _ => {}
            }
        }
        Self { names }
    }

    /// The dotted path an expression names (`np.ndarray` → `numpy.ndarray`), if it is a name or an
    /// attribute chain.
    #[instrument(level = "trace", skip_all)]
    fn qualify(&self, expr: &Expr) -> Option<String> {
        let mut parts = Vec::new();
        let mut current = expr;
        loop {
            match current {
                Expr::Attribute(attribute) if parts.len() < 32 => {
                    parts.push(attribute.attr.id.to_string());
                    current = &attribute.value;
                }
                Expr::Name(name) => {
                    let id = name.id.as_str();
                    parts.push(self.names.get(id).cloned().unwrap_or_else(|| id.to_string()));
                    break;
                }
                _ => return None,
            }
        }
        parts.reverse();
        Some(parts.join("."))
    }

    #[instrument(level = "trace", skip_all)]
    fn is_decode_args(&self, decorator: &Expr) -> bool {
        self.qualify(decorator)
            .is_some_and(|name| name == "decode_args" || name.ends_with(".decode_args"))
    }

    /// The call of `@kea_runtime.tensors(...)` (or an alias of it).
    #[instrument(level = "trace", skip_all)]
    fn tensors_call<'e>(&self, decorator: &'e Expr) -> Option<&'e ruff_python_ast::ExprCall> {
        let Expr::Call(call) = decorator else {
            return None;
        };
        let name = self.qualify(&call.func)?;
        matches!(
            name.as_str(),
            "kea_runtime.tensors" | "kea_runtime.declare.tensors"
        )
        .then_some(call)
    }
}

/// A tensor read from the source, before it becomes a [`Tensor`].
#[derive(Debug, Clone)]
struct Declared {
    name: String,
    line: usize,
    kind: TensorType,
    description: Option<String>,
}

impl<'a> Module<'a, '_> {
    /// The class named `class_name`, or the file's only serving class.
    #[instrument(level = "trace", skip_all)]
    fn select(&self, class_name: Option<&str>) -> Result<&'a StmtClassDef, SourceProblem> {
        let listed = |classes: &[&StmtClassDef]| {
            classes
                .iter()
                .map(|class| format!("{} (line {})", class.name.id, self.line(class.name.start())))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(wanted) = class_name {
            let wanted = wanted.rsplit('.').next().unwrap_or(wanted);
            // The last definition wins, as in Python.
            return self
                .classes
                .iter()
                .rev()
                .find(|class| class.name.id.as_str() == wanted)
                .copied()
                .ok_or_else(|| {
                    let found = if self.classes.is_empty() {
                        "it defines no class".to_string()
                    } else {
                        format!("it defines {}", listed(&self.classes))
                    };
                    self.at.problem_at_line(
                        ProblemKind::ClassNotFound,
                        1,
                        format!("no class {wanted} in this file ({found}): className names the module and the class, e.g. serving.Classifier for class Classifier in serving.py"),
                    )
                });
        }
        let serving: Vec<&StmtClassDef> = self
            .classes
            .iter()
            .copied()
            .filter(|class| self.method(class, "predict").is_some())
            .collect();
        match serving.as_slice() {
            [only] => Ok(only),
            [] => Err(self.at.problem_at_line(
                ProblemKind::NoServingClass,
                1,
                "no serving class: no class in this file has a predict method (MLRun: load() and predict(self, body); KServe: a kserve.Model; MLServer: an mlserver.MLModel)",
            )),
            [_, second, ..] => Err(self.at.problem(
                ProblemKind::SeveralServingClasses,
                second.name.start(),
                format!(
                    "several serving classes: {}; name one with className (Model resource) or --class",
                    listed(&serving)
                ),
            )),
        }
    }

    #[instrument(level = "trace", skip_all)]
    fn line(&self, offset: TextSize) -> usize {
        self.at.line(offset)
    }

    /// The class that defines `name` for `class` (itself or a base class in this file), and the
    /// method.
    #[instrument(level = "trace", skip_all)]
    fn method(&self, class: &'a StmtClassDef, name: &str) -> Option<(&'a StmtClassDef, &'a StmtFunctionDef)> {
        let mut queue = vec![class];
        let mut seen = 0;
        while let Some(current) = queue.pop() {
            seen += 1;
            if seen > MAX_BASES {
                return None;
            }
            if let Some(method) = current.body.iter().rev().find_map(|statement| match statement {
                Stmt::FunctionDef(function) if function.name.id.as_str() == name => Some(function),
                _ => None,
            }) {
                return Some((current, method));
            }
            for base in self.bases(current).iter().rev() {
                if let Some(defined) = self
                    .classes
                    .iter()
                    .find(|other| other.name.id.as_str() == base.as_str() && other.range != current.range)
                {
                    queue.insert(0, defined);
                }
            }
        }
        None
    }

    /// The dotted names of a class's bases.
    #[instrument(level = "trace", skip_all)]
    fn bases(&self, class: &StmtClassDef) -> Vec<String> {
        class
            .arguments
            .as_ref()
            .map(|arguments| {
                arguments
                    .args
                    .iter()
                    .filter_map(|base| self.imports.qualify(base))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The convention, from the bases (followed through this file) and `predict`.
    #[instrument(level = "trace", skip_all)]
    fn convention(&self, class: &'a StmtClassDef, decode_args: bool) -> Convention {
        let mut bases = Vec::new();
        let mut queue = vec![class];
        while let Some(current) = queue.pop() {
            if bases.len() > MAX_BASES * 4 {
                break;
            }
            for base in self.bases(current) {
                if let Some(defined) = self
                    .classes
                    .iter()
                    .find(|other| other.name.id.as_str() == base.as_str() && other.range != current.range)
                {
                    if queue.len() < MAX_BASES {
                        queue.push(defined);
                    }
                }
                bases.push(base);
            }
        }
        let last = |name: &str| name.rsplit('.').next().unwrap_or(name).to_string();
        if decode_args
            || bases
                .iter()
                .any(|base| base.starts_with("mlserver.") && last(base) == "MLModel")
        {
            Convention::MlServer
        } else if bases
            .iter()
            .any(|base| base.starts_with("kserve.") && last(base) == "Model")
        {
            Convention::KServe
        } else {
            Convention::MlRun
        }
    }

    #[instrument(level = "debug", skip_all, fields(class = %class.name.id), err(level = "debug", Display))]
    fn read_class(&self, class: &'a StmtClassDef) -> Result<SourceSignature, SourceProblem> {
        let class_line = self.line(class.name.start());
        let Some((_, predict)) = self.method(class, "predict") else {
            return Err(self.at.problem_at_line(
                ProblemKind::NoPredict,
                class_line,
                format!(
                    "class {} has no predict method: a serving class has predict(self, body) (MLRun), predict(self, payload, headers=None) (KServe) or async predict(self, payload) (MLServer)",
                    class.name.id
                ),
            ));
        };
        let decode_args = predict
            .decorator_list
            .iter()
            .any(|decorator| self.imports.is_decode_args(&decorator.expression));
        let convention = self.convention(class, decode_args);
        let predict_doc = Doc::of(self.at, &predict.body)?;
        let preprocess_doc = match self.method(class, "preprocess") {
            Some((_, method)) => Doc::of(self.at, &method.body)?,
            None => None,
        };
        let postprocess_doc = match self.method(class, "postprocess") {
            Some((_, method)) => Doc::of(self.at, &method.body)?,
            None => None,
        };
        let class_doc = Doc::of(self.at, &class.body)?;
        // Sections: predict's, else preprocess's (what the client sends) and postprocess's (what it
        // gets back).
        let input_section = predict_doc
            .as_ref()
            .and_then(|doc| doc.inputs.as_ref())
            .or_else(|| preprocess_doc.as_ref().and_then(|doc| doc.inputs.as_ref()));
        let output_section = predict_doc
            .as_ref()
            .and_then(|doc| doc.outputs.as_ref())
            .or_else(|| postprocess_doc.as_ref().and_then(|doc| doc.outputs.as_ref()));
        let decorated = self.decorated(class, predict)?;

        let inputs = match (&decorated, decode_args) {
            (Some((Some(inputs), _)), _) => described(inputs.clone(), input_section),
            (_, true) => self.hinted_inputs(predict, input_section)?,
            _ => match input_section {
                Some(section) => typed(self.at, section, "Inputs")?,
                None => return Err(self.no_tensors(convention, class, predict)),
            },
        };
        let outputs = match (&decorated, decode_args) {
            (Some((_, Some(outputs))), _) => described(outputs.clone(), output_section),
            (_, true) => self.hinted_outputs(predict, output_section)?,
            _ => match output_section {
                Some(section) => typed(self.at, section, "Outputs")?,
                None => Vec::new(),
            },
        };
        if inputs.is_empty() {
            return Err(self.no_tensors(convention, class, predict));
        }
        let signature = self.signature(&inputs, &outputs)?;
        let descriptions = Descriptions {
            model: class_doc.as_ref().and_then(Doc::description),
            operation: predict_doc.as_ref().and_then(Doc::summary),
            inputs: descriptions_of(&inputs),
            outputs: descriptions_of(&outputs),
        };
        Ok(SourceSignature {
            class_name: class.name.id.to_string(),
            line: class_line,
            convention,
            signature,
            descriptions,
        })
    }

    /// `@kea_runtime.tensors(inputs=…, outputs=…)` on `predict`, else on the class.
    #[instrument(level = "trace", skip_all)]
    fn decorated(
        &self,
        class: &StmtClassDef,
        predict: &StmtFunctionDef,
    ) -> Result<Option<literal::Lists>, SourceProblem> {
        let call = predict
            .decorator_list
            .iter()
            .chain(class.decorator_list.iter())
            .find_map(|decorator| self.imports.tensors_call(&decorator.expression));
        match call {
            Some(call) => literal::tensors_call(self.at, call).map(Some),
            None => Ok(None),
        }
    }

    /// The problem of a class whose `predict` (or `preprocess`, which gets the request first)
    /// takes the whole request and declares nothing.
    #[instrument(level = "trace", skip_all)]
    fn no_tensors(
        &self,
        convention: Convention,
        class: &'a StmtClassDef,
        predict: &StmtFunctionDef,
    ) -> SourceProblem {
        let receiver = match self.method(class, "preprocess") {
            Some((_, preprocess)) if convention != Convention::MlServer => preprocess,
            _ => predict,
        };
        let parameters: Vec<String> = receiver
            .parameters
            .posonlyargs
            .iter()
            .chain(receiver.parameters.args.iter())
            .map(|parameter| parameter.parameter.name.id.to_string())
            .collect();
        let request = parameters.get(1).map(String::as_str).unwrap_or("body");
        let how = match convention {
            Convention::MlRun => format!("takes the whole request body `{request}` (MLRun convention), which does not say which tensors it holds"),
            Convention::KServe => format!("takes the whole request `{request}` (KServe convention), which does not say which tensors it holds"),
            Convention::MlServer => format!("takes the whole InferenceRequest `{request}` (MLServer convention) and is not decorated with @decode_args, whose typed parameters would be the tensors"),
        };
        let docstring = if receiver.name.id.as_str() == "preprocess" {
            "preprocess's or predict's docstring"
        } else {
            "predict's docstring"
        };
        self.at.problem(
            ProblemKind::NoTensors,
            receiver.name.start(),
            format!(
                "{}.{}({}) {how}; declare the tensors in {docstring} (an `Inputs:` section of `name (DATATYPE[shape]): description` lines, and `Outputs:`) or with @kea_runtime.tensors(inputs=[...], outputs=[...])",
                class.name.id,
                receiver.name.id,
                parameters.join(", ")
            ),
        )
    }

    /// MLServer's `@decode_args`: the parameters after `self` are the inputs; their type hints, or
    /// the docstring's entries of the same name, give their datatypes.
    #[instrument(level = "trace", skip_all)]
    fn hinted_inputs(
        &self,
        predict: &StmtFunctionDef,
        section: Option<&docstring::Section>,
    ) -> Result<Vec<Declared>, SourceProblem> {
        let parameters: Vec<&ruff_python_ast::ParameterWithDefault> = predict
            .parameters
            .posonlyargs
            .iter()
            .chain(predict.parameters.args.iter())
            .skip(1)
            .chain(predict.parameters.kwonlyargs.iter())
            .collect();
        let documented = entries_by_name(section);
        if let Some(section) = section {
            for entry in &section.entries {
                if !parameters
                    .iter()
                    .any(|parameter| parameter.parameter.name.id.as_str() == entry.name)
                {
                    return Err(self.at.problem_at_line(
                        ProblemKind::MalformedDocstring,
                        entry.line,
                        format!(
                            "input `{}` is not a parameter of predict: with MLServer's @decode_args the parameters are the inputs",
                            entry.name
                        ),
                    ));
                }
            }
        }
        let mut inputs = Vec::new();
        for parameter in parameters {
            let name = parameter.parameter.name.id.to_string();
            let line = self.line(parameter.parameter.name.start());
            let entry = documented.get(name.as_str());
            let kind = match entry.and_then(|entry| entry.kind.clone()) {
                Some(kind) => kind,
                None => self
                    .hint(parameter.parameter.annotation.as_deref(), false)
                    .map_err(|why| {
                        self.at.problem_at_line(
                            ProblemKind::UnknownDatatype,
                            line,
                            format!(
                                "input `{name}` of predict (MLServer @decode_args): {why}; give its datatype and shape in predict's docstring: `Inputs:` then `    {name} (FP32[-1, 4]): description`"
                            ),
                        )
                    })?,
            };
            let optional = kind.optional || parameter.default.is_some();
            inputs.push(Declared {
                name,
                line,
                kind: TensorType { optional, ..kind },
                description: entry
                    .map(|entry| entry.description.clone())
                    .filter(|text| !text.is_empty()),
            });
        }
        Ok(inputs)
    }

    /// MLServer's `@decode_args`: the return hint gives the outputs `output-0`, `output-1`… (a
    /// `Tuple[...]` one per item), or the docstring's entries of those names.
    #[instrument(level = "trace", skip_all)]
    fn hinted_outputs(
        &self,
        predict: &StmtFunctionDef,
        section: Option<&docstring::Section>,
    ) -> Result<Vec<Declared>, SourceProblem> {
        let Some(returns) = predict.returns.as_deref() else {
            return match section {
                Some(section) => typed(self.at, section, "Outputs"),
                None => Ok(Vec::new()),
            };
        };
        let line = self.line(returns.start());
        let items: Vec<&Expr> = match returns {
            Expr::NoneLiteral(_) => Vec::new(),
            Expr::Subscript(subscript)
                if self
                    .imports
                    .qualify(&subscript.value)
                    .is_some_and(|name| matches!(last(&name), "Tuple" | "tuple")) =>
            {
                match subscript.slice.as_ref() {
                    Expr::Tuple(tuple) => tuple.elts.iter().collect(),
                    single => vec![single],
                }
            }
            single => vec![single],
        };
        let documented = entries_by_name(section);
        let names: Vec<String> = (0..items.len()).map(|index| format!("output-{index}")).collect();
        if let Some(section) = section {
            for entry in &section.entries {
                if !names.contains(&entry.name) {
                    return Err(self.at.problem_at_line(
                        ProblemKind::MalformedDocstring,
                        entry.line,
                        format!(
                            "output `{}`: MLServer's @decode_args names the outputs output-0, output-1… after the return type ({} here)",
                            entry.name,
                            if names.is_empty() { "none".to_string() } else { names.join(", ") }
                        ),
                    ));
                }
            }
        }
        let mut outputs = Vec::new();
        for (name, item) in names.into_iter().zip(items) {
            let entry = documented.get(name.as_str());
            let kind = match entry.and_then(|entry| entry.kind.clone()) {
                Some(kind) => kind,
                None => self.hint(Some(item), true).map_err(|why| {
                    self.at.problem_at_line(
                        ProblemKind::UnknownDatatype,
                        line,
                        format!(
                            "output `{name}` of predict (MLServer @decode_args, the return type): {why}; give its datatype and shape in predict's docstring: `Outputs:` then `    {name} (FP32[-1]): description`"
                        ),
                    )
                })?,
            };
            outputs.push(Declared {
                name,
                line,
                kind,
                description: entry
                    .map(|entry| entry.description.clone())
                    .filter(|text| !text.is_empty()),
            });
        }
        Ok(outputs)
    }

    /// The tensor a `@decode_args` type hint decodes to, as MLServer's codecs read it: `List[str]`
    /// (also `bytes`, `datetime`) is BYTES, `List[int]` INT64, `List[float]` FP64, `List[bool]`
    /// BOOL — inputs of shape `[-1]`; MLServer returns lists as `[N, 1]`.
    #[instrument(level = "trace", skip_all)]
    fn hint(&self, annotation: Option<&Expr>, output: bool) -> Result<TensorType, String> {
        let Some(mut annotation) = annotation else {
            return Err("it has no type hint".into());
        };
        let mut optional = false;
        // Optional[X], Union[X, None], X | None: MLServer unwraps them (X).
        for _ in 0..4 {
            match annotation {
                Expr::Subscript(subscript) => {
                    let Some(name) = self.imports.qualify(&subscript.value) else {
                        break;
                    };
                    match (last(&name), subscript.slice.as_ref()) {
                        ("Optional", inner) => {
                            optional = true;
                            annotation = inner;
                        }
                        ("Union", Expr::Tuple(tuple)) => match without_none(&tuple.elts) {
                            Some(inner) => {
                                optional = true;
                                annotation = inner;
                            }
                            None => break,
                        },
                        _ => break,
                    }
                }
                Expr::BinOp(binary) if binary.op == ruff_python_ast::Operator::BitOr => {
                    match (binary.left.as_ref(), binary.right.as_ref()) {
                        (Expr::NoneLiteral(_), inner) | (inner, Expr::NoneLiteral(_)) => {
                            optional = true;
                            annotation = inner;
                        }
                        _ => break,
                    }
                }
                _ => break,
            }
        }
        let shown = self.show(annotation);
        let element = match annotation {
            Expr::Subscript(subscript)
                if self
                    .imports
                    .qualify(&subscript.value)
                    .is_some_and(|name| matches!(last(&name), "List" | "list")) =>
            {
                self.imports.qualify(&subscript.slice)
            }
            _ => None,
        };
        let datatype = match element.as_deref().map(last) {
            Some("str" | "bytes" | "datetime") => Datatype::Bytes,
            Some("int") => Datatype::Int64,
            Some("float") => Datatype::Fp64,
            Some("bool") => Datatype::Bool,
            _ => {
                let name = self.imports.qualify(annotation).unwrap_or_default();
                return Err(match last(&name) {
                    "ndarray" | "NDArray" => format!("`{shown}` says neither its datatype nor its shape"),
                    "DataFrame" => format!("`{shown}` decodes several inputs as its columns, which the type does not name"),
                    _ => format!("`{shown}` is not a type @decode_args decodes into one tensor (List[str], List[bytes], List[int], List[float], List[bool]; np.ndarray with its datatype and shape documented)"),
                });
            }
        };
        let list_as_column = output && datatype == Datatype::Bytes;
        Ok(TensorType {
            datatype,
            shape: if list_as_column { vec![-1, 1] } else { vec![-1] },
            optional: optional && !output,
        })
    }

    /// A short rendering of a type expression for messages.
    #[instrument(level = "trace", skip_all)]
    fn show(&self, expr: &Expr) -> String {
        match expr {
            Expr::Subscript(subscript) => format!(
                "{}[{}]",
                self.show(&subscript.value),
                match subscript.slice.as_ref() {
                    Expr::Tuple(tuple) => tuple
                        .elts
                        .iter()
                        .map(|item| self.show(item))
                        .collect::<Vec<_>>()
                        .join(", "),
                    slice => self.show(slice),
                }
            ),
            Expr::Attribute(attribute) => format!("{}.{}", self.show(&attribute.value), attribute.attr.id),
            Expr::Name(name) => name.id.to_string(),
            Expr::NoneLiteral(_) => "None".into(),
            _ => "…".into(),
        }
    }

    /// The checked signature: unique names, sizes, dimensions, at least one required input.
    #[instrument(level = "trace", skip_all)]
    fn signature(&self, inputs: &[Declared], outputs: &[Declared]) -> Result<Signature, SourceProblem> {
        for (kind, tensors) in [("input", inputs), ("output", outputs)] {
            if tensors.len() > MAX_TENSORS {
                let line = tensors.first().map(|tensor| tensor.line).unwrap_or(1);
                return Err(self.at.problem_at_line(
                    ProblemKind::InvalidSignature,
                    line,
                    format!(
                        "{} {kind}s are more than a model may declare ({MAX_TENSORS})",
                        tensors.len()
                    ),
                ));
            }
            for (index, tensor) in tensors.iter().enumerate() {
                if tensors.iter().take(index).any(|other| other.name == tensor.name) {
                    return Err(self.at.problem_at_line(
                        ProblemKind::InvalidSignature,
                        tensor.line,
                        format!("{kind} `{}` is declared twice", tensor.name),
                    ));
                }
                if !docstring::is_tensor_name(&tensor.name) {
                    return Err(self.at.problem_at_line(
                        ProblemKind::InvalidSignature,
                        tensor.line,
                        format!(
                            "{kind} name {:?}: letters, digits, `_`, `.`, `:` and `-` only",
                            tensor.name
                        ),
                    ));
                }
                if kind == "output" && tensor.kind.optional {
                    return Err(self.at.problem_at_line(
                        ProblemKind::InvalidSignature,
                        tensor.line,
                        format!("output `{}`: only inputs can be optional", tensor.name),
                    ));
                }
                let fixed = tensor
                    .kind
                    .shape
                    .iter()
                    .filter(|dim| **dim > 0)
                    .try_fold(1i64, |product, dim| product.checked_mul(*dim));
                if fixed.is_none_or(|fixed| fixed > 1 << 24) {
                    return Err(self.at.problem_at_line(
                        ProblemKind::InvalidSignature,
                        tensor.line,
                        format!("{kind} `{}`: its fixed dimensions are more elements per item than the gateway reads", tensor.name),
                    ));
                }
            }
        }
        if inputs.iter().all(|tensor| tensor.kind.optional) {
            let line = inputs.first().map(|tensor| tensor.line).unwrap_or(1);
            return Err(self.at.problem_at_line(
                ProblemKind::InvalidSignature,
                line,
                "every input is optional: at least one input must be required",
            ));
        }
        let tensor = |declared: &Declared| Tensor {
            name: declared.name.clone(),
            datatype: declared.kind.datatype,
            shape: declared.kind.shape.clone(),
            optional: declared.kind.optional,
        };
        Ok(Signature {
            inputs: inputs.iter().map(tensor).collect(),
            outputs: outputs.iter().map(tensor).collect(),
        })
    }
}

/// The last segment of a dotted name.
#[instrument(level = "trace", skip_all)]
fn last(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// The one item of `Union[X, None]` that is not `None`.
#[instrument(level = "trace", skip_all)]
fn without_none(items: &[Expr]) -> Option<&Expr> {
    match items {
        [Expr::NoneLiteral(_), inner] | [inner, Expr::NoneLiteral(_)] => Some(inner),
        _ => None,
    }
}

#[instrument(level = "trace", skip_all)]
fn entries_by_name(section: Option<&docstring::Section>) -> HashMap<&str, &Entry> {
    section
        .map(|section| {
            section
                .entries
                .iter()
                .map(|entry| (entry.name.as_str(), entry))
                .collect()
        })
        .unwrap_or_default()
}

/// Docstring entries as tensors: each must give its type.
#[instrument(level = "trace", skip_all)]
fn typed(at: &At, section: &docstring::Section, title: &str) -> Result<Vec<Declared>, SourceProblem> {
    section
        .entries
        .iter()
        .map(|entry| match &entry.kind {
            Some(kind) => Ok(Declared {
                name: entry.name.clone(),
                line: entry.line,
                kind: kind.clone(),
                description: Some(entry.description.clone()).filter(|text| !text.is_empty()),
            }),
            None => Err(at.problem_at_line(
                ProblemKind::MalformedDocstring,
                entry.line,
                format!(
                    "{title} entry `{}` gives no datatype and shape: write `{} (FP32[-1, 4]): description` (only @decode_args parameters with a type hint may leave it out)",
                    entry.name, entry.name
                ),
            )),
        })
        .collect()
}

/// Decorator tensors, with the docstring's descriptions where the decorator gives none.
#[instrument(level = "trace", skip_all)]
fn described(mut tensors: Vec<Declared>, section: Option<&docstring::Section>) -> Vec<Declared> {
    let documented = entries_by_name(section);
    for tensor in &mut tensors {
        if tensor.description.is_none() {
            tensor.description = documented
                .get(tensor.name.as_str())
                .map(|entry| entry.description.clone())
                .filter(|text| !text.is_empty());
        }
    }
    tensors
}

#[instrument(level = "trace", skip_all)]
fn descriptions_of(tensors: &[Declared]) -> BTreeMap<String, String> {
    tensors
        .iter()
        .filter_map(|tensor| Some((tensor.name.clone(), tensor.description.clone()?)))
        .collect()
}
