// The form host: renders one form document from the connector with react-jsonschema-form.
//
// A form document is what `exact-connector form NAME --rjsf` prints (or Connector.rjsf_form):
// {schema, uiSchema, errorMessages}. The host is built twice, against @rjsf/core 6 and 5
// (see build.mjs); each entry point passes its own Form and validator in.
import { createElement, useState } from 'react';
import { createRoot } from 'react-dom/client';

// The connector's human messages replace ajv's (which would show raw regexes). errorMessages maps
// the schema location of a rule (its schemaPath without the keyword) to the message; the "if"
// errors only repeat the "then" branch's own error.
export function humanErrors(errorMessages) {
  return (errors) =>
    errors
      .filter((error) => error.name !== 'if')
      .map((error) => {
        const message = errorMessages[(error.schemaPath || '').replace(/\/[^/]*$/, '')];
        return message ? { ...error, message, stack: error.stack.replace(error.message, message) } : error;
      });
}

// The settings every host of a connector form shares (the browser tests' host and the ui app).
// RJSF 6 would make a lone `const` inside a oneOf choice the field's default (picking the first
// division or region for the person); 'skipOneOf' leaves such fields empty until chosen.
export function formProps(form) {
  return {
    schema: form.schema,
    uiSchema: form.uiSchema,
    transformErrors: humanErrors(form.errorMessages || {}),
    showErrorList: 'top',
    noHtml5Validate: true,
    experimental_defaultFormStateBehavior: { constAsDefaults: 'skipOneOf' },
  };
}

function FormHost({ Form, validator, form, formData, onSubmit, onError }) {
  const [data, setData] = useState(formData);
  return createElement(Form, {
    ...formProps(form),
    validator,
    formData: data,
    onChange: (event) => setData(event.formData),
    onSubmit: (event) => onSubmit(event.formData),
    // The form shows the errors; handling them here keeps RJSF from logging them as a failure.
    onError,
  });
}

// Mount a form into `element`; `onSubmit(formData)` gets what a person submitted.
export function mount(Form, validator, element, form, options = {}) {
  const { formData, onSubmit = () => {}, onError = () => {} } = options;
  const root = createRoot(element);
  root.render(createElement(FormHost, { Form, validator, form, formData, onSubmit, onError }));
  return () => root.unmount();
}
