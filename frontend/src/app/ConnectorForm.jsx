// One connector form (the document from /api/forms/…) in RJSF 6 with Ajv2020, as every engine
// front end renders it: the host's shared settings, the page's own buttons.
import Form from '@rjsf/core';
import { customizeValidator } from '@rjsf/validator-ajv8';
import Ajv2020 from 'ajv/dist/2020';
import { forwardRef } from 'react';
import { formProps } from '../host.jsx';

const validator = customizeValidator({ AjvClass: Ajv2020 });

// The title a person sees for a field at RJSF's property path: ".filter" is "Filter"; in a list,
// the row is named too (".data.fields.1.field" is "More fields 2 › Field"). "" for the form.
function titleAt(schema, property) {
  const parts = property.split('.').filter(Boolean);
  const labels = [];
  let node = schema;
  for (const part of parts) {
    if (/^\d+$/.test(part)) {
      node = node?.items;
      labels.push(`${labels.pop() ?? 'Item'} ${Number(part) + 1}`); // the list's title, numbered
    } else {
      node = node?.properties?.[part];
      labels.push(node?.title ?? part);
    }
  }
  const inRow = parts.length >= 2 && /^\d+$/.test(parts.at(-2));
  return inRow ? labels.slice(-2).join(' › ') : (labels.at(-1) ?? '');
}

// RJSF's list of errors above the form. An error the connector returned (a field it refused
// after the form was sent) reads ".order_by Dat is not a field..." there: it says the field's
// title instead, as the form's own errors do.
function ErrorList({ errors, schema }) {
  return (
    <div className="panel panel-danger errors">
      <div className="panel-heading"><h3 className="panel-title">Errors</h3></div>
      <ul className="list-group">
        {errors.map((error, index) => {
          const raw = error.property && error.stack === `${error.property} ${error.message}`;
          const title = raw ? titleAt(schema, error.property) : '';
          return (
            <li key={index} className="list-group-item text-danger">
              {raw ? (title ? `${title}: ${error.message}` : error.message) : error.stack}
            </li>
          );
        })}
      </ul>
    </div>
  );
}

export const ConnectorForm = forwardRef(function ConnectorForm(
  { form, formData, onChange, onSubmit, onError, extra, children },
  ref,
) {
  return (
    <Form
      ref={ref}
      {...formProps(form)}
      validator={validator}
      formData={formData}
      extraErrors={extra}
      templates={{ ErrorListTemplate: ErrorList }}
      onChange={(event) => onChange?.(event.formData)}
      onSubmit={(event) => onSubmit(event.formData)}
      onError={() => onError?.()}
    >
      {children}
    </Form>
  );
});
